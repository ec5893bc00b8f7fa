"""Treatment effects by the method (docs/DESIGN.md, "Effects").

Every nuisance function is fitted by ``rfp.fit_arrays`` (regularized
bi-level gradient descent; logistic loss for a binary treatment) with
cross-fitting whose folds are **whole clusters** (``cluster_folds``): the
prediction for a row comes from a fit that saw none of its cluster.

dml_plm
    Partially linear model Y = τ D + g(X) + ε (docs/DESIGN.md, eq. 3-4): with
    cross-fitted ĝ(X) ≈ E[Y | X] and m̂(X) ≈ E[D | X], U = Y − ĝ, V = D − m̂,

        τ̂ = Σ V U / Σ V²                      (residual-on-residual, pooled over folds)

    and the CR1 variance of that no-intercept regression (K = 1),
    G/(G−1)·(n−1)/(n−1)·Σ_g (Σ_{i∈g} V_i e_i)² / (Σ V²)², e = U − τ̂ V, which is
    the cluster-sum variance of the score's influence function
    ψ_i = V_i e_i / mean(V²). The interval uses t on G − 1 df.

    Against DoubleML (tests/python/test_nuisance.py): with the same folds
    (``fold=``, DoubleML's ``set_sample_splitting``) and linear/logistic
    nuisances, τ̂ equals DoubleML's cluster PLR to 1e-8 when the folds hold
    equal numbers of rows, and our SE is DoubleML's times √(G/(G−1)) (its
    one-way cluster variance has no small-sample factor). With unequal folds
    DoubleML solves (1/K) Σ_k mean_k[V (U − τ V)] = 0, every fold's mean
    counting once; we pool the rows (τ̂ = Σ V U / Σ V²), so a row counts the
    same whichever fold it is in. The two differ by O(1/n) weighting only.

    variance_share = 1 − Var(V) / Var(D) is the share of treatment variance
    the nuisance model explains. By Frisch–Waugh–Lovell τ̂ rests on V alone; when
    treatment is a function of cluster-level controls a flexible first stage
    drives V to zero, and whatever variation is left is functional-form-induced
    ("Regularizing the Forward Pass", eq. 1–3). Above ``warn_share`` (0.9) a
    ``FunctionalFormWarning`` says so.

aipw
    Augmented IPW for a binary treatment (docs/DESIGN.md, eq. 5-6), with ê(X)
    clipped to [clip, 1 − clip] (the number clipped is reported) and outcome
    models μ0, μ1 fitted by the method on each arm's training rows:

        ATE: φ_i = μ1 − μ0 + D (Y − μ1)/ê − (1 − D)(Y − μ0)/(1 − ê),  τ̂ = mean φ,
             ψ_i = φ_i − τ̂
        ATT: τ̂ = Σ [D (Y − μ0) − (1 − D) ê/(1 − ê) (Y − μ0)] / Σ D,
             ψ_i = [D (Y − μ0) − (1 − D) ê/(1 − ê) (Y − μ0) − D τ̂] / mean(D)

    SE = ``inference.cluster_if_se(ψ, cluster)`` (G/(G−1) Σ_g S_g² / n²).

    The propensity ê is fitted at the level where treatment is assigned
    (``propensity="auto"``): when treatment is constant within clusters, by
    ``cluster_propensity`` (a ridge-penalised logistic regression with one row
    per cluster on the cluster means of the controls, its penalty chosen by
    leave-one-cluster-out deviance, cross-fitted by the same cluster folds);
    otherwise by the method on individual rows (``propensity="individual"``).

t_learner
    τ(x) = μ1(x) − μ0(x), each arm fitted by the method on all its rows.

Small-cluster inference (``vcov``): only "CR1" (t on G − 1). CR2 and the
wild cluster bootstrap are offered for the fixed-effects regression
(``baselines.fixed_effects``) but not here, because their theory does not
carry over: CR2's adjustment (I − H_gg)^{-1/2} undoes the shrinkage of OLS
residuals by a fixed design's hat matrix H, while DML's and AIPW's residuals
come from nonlinear nuisance fits on the other clusters, which have no hat
matrix; a leverage correction of the final residual-on-residual step alone
would ignore the nuisance estimation error, the larger part with few
clusters. A wild bootstrap that keeps the nuisances fixed has the same gap,
and one that refits them costs folds × nuisances fits per draw.
``check_vcov`` raises ``NotImplementedError`` saying so.

Repeated cross-fitting (``repeats`` = S > 1; Chernozhukov et al. 2018,
"Double/debiased machine learning", Section 3.4): the whole estimator is
run on S independent fold splits (split s uses seed ``split_seed(seed, s)``)
and aggregated by the median,

    τ̂ = median_s τ̂_s,   σ̂² = median_s [σ̂_s² + (τ̂_s − τ̂)²],

so the spread due to the split enters the standard error. With about 40
clusters this matters: validation/RESULTS.md shows DML's 95% interval
covering 0.875–0.905 of the time with one split and 0.945–0.97 with five."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rfp.effects.crossfit import _settings, fit_converged, nuisances, rows_of, split_nuisances
from rfp.effects.folds import median_over_splits
from rfp.effects.propensity import PROPENSITY_PENALTY, aipw_propensity, propensity_level
from rfp.effects.reading import check_vcov, read, with_case_weights, with_text
from rfp.effects.result import Effect
from rfp.effects.scores import WARN_SHARE, aipw_from_nuisances, overlap_checks, plm_from_residuals
from rfp.progress import over_fits
from rfp.settings import validate
from rfp.simulate import Simulation
from rfp.training.fit import fit_arrays
from rfp.training.fitted import FittedModel


def dml_plm(data, y=None, d=None, x=None, cluster=None, *, folds: int = 5, seed: int = 0,
            repeats: int | None = None, design=None, level: float = 0.95,
            warn_share: float | None = WARN_SHARE, na_action: str = "fail",
            vcov: str = "CR1", nuisance: str = "select", fold=None, text=None,
            **fit_settings) -> Effect:
    """Partially linear model by double ML with cluster-fold cross-fitting
    (module docstring); ``repeats`` > 1 repeats it over fold splits and takes
    the median (None: ``default_repeats``, 5 below 100 clusters). ``nuisance``:
    "select" (the ladder constant → linear → the method, by cross-validation
    across cluster folds, ``effects.nuisance``), "method", "linear" or
    "constant". ``fold``: a fold label per row, to reuse given folds (one
    split; e.g. DoubleML's). ``fit_settings`` go to ``rfp.fit_arrays`` for the
    method's nuisances (model, hidden, alpha, inner_steps, max_steps, ...).
    diagnostics add nuisance_models (the rung chosen per nuisance),
    largest_cluster_share and overlap_warnings (``overlap_checks``).

    ``text``: text columns among the controls (a name or a list; x may then
    be None). One vocabulary is built from all rows used (``read``: no
    outcome or treatment enters it), and the method's rung of every
    nuisance is the embedding bag of ``rfp.fit(text=...)`` (``model="text"``
    with ``model`` "mlp" or "linear" as its head; settings embedding_dim,
    vocab_size, max_tokens), fitted on the text and the numeric controls;
    the closed-form rungs (constant, ridge, linear) use the numeric controls
    only."""
    check_vcov(vcov, "DML")
    ed = read(data, y, d, x, cluster, na_action=na_action, design=design, method="dml_plm",
              weights=fit_settings.get("weights"), text=text, fit_settings=fit_settings)
    fit_settings = with_text(ed, with_case_weights(ed, fit_settings))
    if fold is not None:
        folds_given = np.asarray(fold).reshape(-1)
        if ed.positive is not None and folds_given.shape == ed.positive.shape:
            folds_given = folds_given[ed.positive]   # labels for the rows of weight 0 too
        if folds_given.shape != (len(ed.y),):
            raise ValueError(f"fold must give one fold label per row used ({len(ed.y)}), "
                             f"got {folds_given.size}")
        nz = nuisances(ed, folds_given, ("g", "m"), seed=seed, nuisance=nuisance,
                       **_settings(fit_settings))
        runs = [(0, folds_given, nz)]
    else:
        runs = split_nuisances(ed, folds, seed, repeats, ("g", "m"), fit_settings, nuisance)
    splits = []
    for s, fold_s, nz in runs:
        out = plm_from_residuals(ed.y, ed.d, nz["g"], nz["m"], ed.cluster, level,
                                 warn_share if s == 0 else None, ed.treatment, "dml", ed.w)
        out.diagnostics["converged"] = nz["converged"]
        out.diagnostics["folds"] = int(len(np.unique(fold_s)))
        out.diagnostics["nuisance_models"] = dict(nz["chosen"])
        out.nuisance["fold"] = fold_s
        splits.append(out)
    return overlap_checks(median_over_splits(splits))


def aipw(data, y=None, d=None, x=None, cluster=None, *, estimand: str = "ATE", folds: int = 5,
         seed: int = 0, repeats: int | None = None, clip: float = 0.01, design=None,
         level: float = 0.95, na_action: str = "fail", propensity: str = "auto",
         propensity_penalty: float | str = PROPENSITY_PENALTY, vcov: str = "CR1",
         nuisance: str = "select", trim=None, text=None, **fit_settings) -> Effect:
    """AIPW (ATE or ATT) for a binary treatment with cluster-fold
    cross-fitting and cluster-robust influence-function SEs (module docstring).

    ``propensity``: "auto" (default) fits ê at the cluster level
    (``cluster_propensity``; ridge penalty ``propensity_penalty``, "cv" by
    leave-one-cluster-out deviance, or a float) when treatment is
    constant within clusters and by the method on individual rows otherwise;
    "cluster" or "individual" force one. diagnostics: propensity (the level
    used), propensity_penalty (cluster level: the ridge penalty per fold),
    propensity_min / propensity_max (before clipping), n_clipped (rows),
    converged (every nuisance fit), nuisance_models (the rung chosen per
    nuisance, ``nuisance`` as in ``dml_plm``), largest_cluster_share,
    overlap_warnings.

    ``trim``: None, "crump" or a number α in (0, 0.5): rows whose ê lies
    outside [α, 1 − α] are left out of the average (Crump, Hotz, Imbens &
    Mitnik 2009; "crump" picks α by their rule, ``crump_threshold``). The
    estimand becomes the ATE/ATT on the kept rows, "ATE (trimmed)" /
    "ATT (trimmed)"; diagnostics report trim_alpha and n_trimmed.

    ``text``: text columns among the controls, as in ``dml_plm``: the
    outcome models and an individual-level propensity take them through the
    method's rung. The cluster-level propensity (cluster means of numeric
    controls) cannot, so with text columns and a treatment assigned to whole
    clusters pass propensity="individual" or use ``dml_plm``."""
    if estimand not in ("ATE", "ATT"):
        raise ValueError(f"estimand must be 'ATE' or 'ATT', got {estimand!r}")
    check_vcov(vcov, "AIPW")
    ed = read(data, y, d, x, cluster, na_action=na_action, binary=True, design=design,
              method="AIPW", weights=fit_settings.get("weights"), text=text,
              fit_settings=fit_settings)
    fit_settings = with_text(ed, with_case_weights(ed, fit_settings))
    level_e = propensity_level(ed, propensity)
    if level_e == "cluster" and ed.text is not None:
        why = ("propensity='cluster'" if propensity == "cluster" else
               f"propensity='auto' and treatment '{ed.treatment}' is assigned to whole clusters")
        raise ValueError(
            f"text controls cannot enter AIPW's cluster-level propensity ({why}; a ridge logit "
            f"on cluster means of the numeric controls): use method='dml' "
            f"(rfp.effects.dml_plm), which takes text controls, or pass "
            f"propensity='individual' to fit the propensity by the text model on rows")
    need = ("mu0", "mu1") if estimand == "ATE" else ("mu0",)
    need = need + (("m",) if level_e == "individual" else ())
    splits = []
    for _, fold, nz in split_nuisances(ed, folds, seed, repeats, need, fit_settings, nuisance):
        e_hat, e_info = aipw_propensity(ed, fold, level_e, propensity_penalty, nz)
        mu1 = nz.get("mu1", np.full(len(ed.y), np.nan))
        out = aipw_from_nuisances(ed.y, ed.d, e_hat, nz["mu0"], mu1, ed.cluster, estimand, clip,
                                  level, trim=trim, w=ed.w)
        out.diagnostics["converged"] = bool(nz["converged"] and e_info["propensity_converged"])
        out.diagnostics.update(e_info)
        out.diagnostics["folds"] = int(folds)
        out.diagnostics["nuisance_models"] = {
            **nz["chosen"], **({"e": "ridge logit on cluster means"} if level_e == "cluster" else {})}
        out.nuisance["fold"] = fold
        splits.append(out)
    return overlap_checks(median_over_splits(splits))


@dataclass
class TLearner:
    """τ(x) = μ1(x) − μ0(x), two fits of the method; ``predict`` takes new
    data (the cluster column is not needed) and returns τ(x) as NumPy."""
    mu0: FittedModel
    mu1: FittedModel
    x_names: list
    treatment: str

    def predict_arrays(self, x) -> np.ndarray:
        return self.mu1.predict_arrays(x) - self.mu0.predict_arrays(x)

    def predict(self, data, na_action: str = "fail") -> np.ndarray:
        if isinstance(data, Simulation):
            data = data.data
        return (self.mu1.predict(data, as_numpy=True, na_action=na_action)
                - self.mu0.predict(data, as_numpy=True, na_action=na_action))

    @property
    def converged(self) -> bool:
        return fit_converged(self.mu0) and fit_converged(self.mu1)

    def __repr__(self) -> str:
        return (f"rfp T-learner for the effect of {self.treatment}: mu0 on "
                f"{self.mu0.n_obs} untreated and mu1 on {self.mu1.n_obs} treated rows, "
                f"controls {self.x_names}; predict(data) gives tau(x)")


def t_learner(data, y=None, d=None, x=None, cluster=None, *, seed: int = 0, design=None,
              na_action: str = "fail", **fit_settings) -> TLearner:
    """Fit μ0 on the untreated rows and μ1 on the treated rows by the method."""
    ed = read(data, y, d, x, cluster, na_action=na_action, binary=True, design=design,
              method="the T-learner", weights=fit_settings.get("weights"))
    fit_settings = with_case_weights(ed, fit_settings)
    _settings(fit_settings)
    arms = []
    with over_fits(fit_settings, 2) as settings:
        for arm in (0, 1):
            rows = ed.d == arm
            if np.unique(ed.cluster[rows]).size < 2:
                raise ValueError(f"the T-learner needs rows from at least two clusters with "
                                 f"{ed.treatment} = {arm}")
            model = fit_arrays(ed.x[rows], ed.y[rows], ed.cluster[rows], loss="squared",
                               seed=seed, **rows_of(settings, rows, len(ed.y)))
            model.x_names = list(ed.x_names)
            arms.append(model)
    return TLearner(arms[0], arms[1], list(ed.x_names), ed.treatment)


ESTIMATORS = {"dml": dml_plm, "aipw": aipw, "t_learner": t_learner}


def effect(data, y=None, d=None, x=None, cluster=None, method: str = "dml", *, text=None,
           **kwargs):
    """A treatment effect by the method, with cross-fitting by whole clusters.

    Parameters
    ----------
    data : Arrow-compatible table or ``rfp.simulate.Simulation``
        A Simulation supplies y, d, x and cluster.
    y, d : str
        Outcome and treatment columns (d binary 0/1 for "aipw" and
        "t_learner"; any numbers for "dml").
    x : list of str, str, or "all"
        Control columns. Required for a table (``x="all"``: every column
        other than y, d and cluster).
    cluster : str
        Cluster column (any type).
    method : {"dml", "aipw", "t_learner"}
        "dml": partially linear model by double ML (``dml_plm``; estimand
        "PLM"); "aipw": augmented IPW (``aipw``; ``estimand`` "ATE" or
        "ATT"); "t_learner": mu1(x) − mu0(x) (``t_learner``).
    text : str or list of str, optional
        Text columns (strings) among the controls, for "dml" and "aipw"; x
        may then be None (no numeric controls). As in ``rfp.fit(text=...)``,
        one vocabulary of words is built from all rows used (no outcome or
        treatment enters it) and the method's nuisance fits are the
        embedding bag on the text and the numeric controls, ``model``
        ("mlp" or "linear") naming its head; settings embedding_dim,
        vocab_size, max_tokens. The closed-form rungs of the nuisance
        ladder (constant, ridge, linear) use the numeric controls only.
        "aipw" needs propensity="individual" when treatment is assigned to
        whole clusters (its cluster-level propensity takes numeric
        controls only).
    **kwargs
        The estimator's options: weights (case weights: a column name or one
        number >= 0 per row; None, the default, weighs every row 1; see
        below), equal_clusters (the nuisance fits weigh each cluster the
        same; default False), folds (5), seed (0), repeats (1, repeated
        cross-fitting), design (None, "cluster", "individual"), level
        (0.95), na_action ("fail"/"omit"), vcov ("CR1" only; "CR2" and
        "wild" raise NotImplementedError with the reason), warn_share
        ("dml"), estimand, clip, propensity, propensity_penalty ("aipw"),
        and the settings of the nuisance fits as in ``rfp.fit`` (model,
        hidden, alpha, max_steps, ...; the loss is chosen per nuisance).

    Case weights (``weights``) are sampling weights, supported by every
    method: each nuisance fit minimises the w-weighted loss, and
    "dml" solves the weighted score, τ̂ = Σ w V U / Σ w V², with cluster
    scores Σ_{i∈g} w_i V_i e_i; "aipw" takes the weighted mean of its
    score, τ̂ = Σ w φ / Σ w (ATT: Σ w s / Σ w D), with influence function
    ψ_i = w_i (φ_i − τ̂) / mean(w); the cluster-level propensity uses
    weighted cluster means. A whole number k as weight equals the row
    repeated k times (same folds). Zero weights are allowed; a missing,
    negative or infinite weight, or a vector of the wrong length, is an
    error naming ``weights`` and the row.

    Returns
    -------
    Effect or TLearner
        ``Effect``: estimate, std_error, ci_low, ci_high, df, se_type,
        diagnostics, nuisance, with ``summary()`` and ``to_pandas()``.
    """
    if not isinstance(method, str) or method not in ESTIMATORS:
        raise ValueError(f"method must be one of {sorted(ESTIMATORS)}, got {method!r}")
    kwargs = validate(kwargs, method, data=data)
    if text is not None:
        if method == "t_learner":
            raise ValueError("text controls (text=) are supported for method='dml' and 'aipw', "
                             "not for the T-learner: use method='dml' (or fit mu0 and mu1 "
                             "yourself with rfp.fit(..., text=...) on each arm)")
        kwargs["text"] = text
    return ESTIMATORS[method](data, y, d, x, cluster, **kwargs)
