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
covering 0.875–0.905 of the time with one split and 0.945–0.97 with five.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import jax
import numpy as np
import pyarrow as pa
from scipy import stats
from scipy.special import expit

from . import alerts
from . import data as data_mod
from . import nuisance as nz_mod
from . import results
from . import quadratic
from .api import DEFAULTS, FittedModel, _text_settings, encode_texts, fit_arrays, solve_arrays
from .bilevel import observation_weights
from .inference import cluster_if_se, cr1_vcov, t_test
from .models import is_text_input
from .progress import over_fits
from .settings import LOSS_PER_NUISANCE, check, validate
from .simulate import Simulation

WARN_SHARE = 0.9


class FunctionalFormWarning(UserWarning):
    """The nuisance model explains nearly all treatment variance (docs/DESIGN.md)."""


# ----------------------------------------------------------------------------
# results

@dataclass
class Effect:
    """One estimate: ``estimand`` is "ATE", "ATT" or "PLM" (the partially
    linear model's τ, a variance-weighted average of effects when they vary).
    ``diagnostics`` holds plain numbers (variance_share, ess, converged,
    n_clipped, ...); ``nuisance`` the cross-fitted predictions and folds;
    ``se_type`` the variance ("CR1": cluster-robust, t on ``df`` = G − 1)."""
    method: str
    estimand: str
    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    n: int
    n_clusters: int
    df: int
    level: float
    diagnostics: dict = field(default_factory=dict)
    nuisance: dict = field(default_factory=dict, repr=False)
    se_type: str = "CR1"

    @property
    def t(self) -> float:
        return self.estimate / self.std_error

    @property
    def p_value(self) -> float:
        """Two-sided p-value of estimate = 0 (t on ``df``)."""
        t = self.t
        return float(2 * stats.t.sf(abs(t), self.df)) if np.isfinite(t) else float("nan")

    def summary(self):
        """Coefficient table (pandas, one row indexed by the estimand):
        estimate, std_error, t, p_value, ci_low, ci_high, df, se_type."""
        pd = results.pandas()
        row = {"estimate": self.estimate, "std_error": self.std_error, "t": self.t,
               "p_value": self.p_value, "ci_low": self.ci_low, "ci_high": self.ci_high,
               "df": self.df, "se_type": self.se_type}
        return pd.DataFrame([row], index=pd.Index([self.estimand], name="estimand"))

    def to_pandas(self):
        """``tidy()`` as a pandas DataFrame, with p_value, df and se_type."""
        out = self.tidy().to_pandas()
        out["p_value"], out["df"], out["se_type"] = self.p_value, self.df, self.se_type
        return out

    def __repr__(self) -> str:
        row = {"estimand": self.estimand, "estimate": self.estimate,
               "std_error": self.std_error, "t": self.t, "p_value": self.p_value,
               "ci_low": self.ci_low, "ci_high": self.ci_high}
        d = self.diagnostics
        notes = [f"{k} {results.number(d[k], 3)}" for k in ("variance_share", "ess")
                 if isinstance(d.get(k), (int, float))]
        if "converged" in d:
            notes.append(f"converged {results.number(bool(d['converged']))}")
        if d.get("repeats", 1) > 1:
            notes.append(f"median of {d['repeats']} fold splits")
        return "\n".join([
            f"rfp effect: {self.method}, {self.n} observations in {self.n_clusters} clusters",
            results.text_table([row], list(row)),
            f"{self.se_type} standard error by cluster; t on {self.df} df; "
            f"{self.level:.0%} interval" + (f"; {', '.join(notes)}" if notes else ""),
        ])

    def tidy(self) -> pa.Table:
        """One row: method, estimand, estimate, std_error, ci_low, ci_high, n, n_clusters."""
        return pa.table({
            "method": [self.method], "estimand": [self.estimand],
            "estimate": [float(self.estimate)], "std_error": [float(self.std_error)],
            "ci_low": [float(self.ci_low)], "ci_high": [float(self.ci_high)],
            "n": [int(self.n)], "n_clusters": [int(self.n_clusters)],
        })


@dataclass
class EffectData:
    """Checked columns for an effect: y, d, x (the numeric controls) as float
    arrays, cluster codes; with text columns among the controls, ``text``
    holds their token ids and masks (``text.TextEncoder.encode``) and
    ``encoder`` the vocabulary, and ``inputs`` is the text model's pytree."""
    y: np.ndarray
    d: np.ndarray
    x: np.ndarray
    cluster: np.ndarray
    labels: np.ndarray
    x_names: list
    outcome: str
    treatment: str
    cluster_name: str
    kept: np.ndarray
    n_dropped: int = 0
    w: np.ndarray | None = None    # case weights of the rows used (None: all 1), mean in [1, 2)
    # with case weights: which complete rows (after na_action) have a positive
    # weight and are used; rows of weight 0 are dropped, as fixest does
    positive: np.ndarray | None = None
    text: dict | None = None       # {"tokens", "mask"} of the rows used, or None
    encoder: object = None         # text.TextEncoder fitted on the rows used

    @property
    def inputs(self):
        """The nuisance models' inputs: the numeric controls, or with text
        columns the pytree ``{"x", "tokens", "mask"}`` of ``models.text_bag``."""
        return self.x if self.text is None else {"x": self.x, **self.text}

    @property
    def n_clusters(self) -> int:
        return len(self.labels)

    @property
    def binary(self) -> bool:
        return bool(np.all((self.d == 0) | (self.d == 1)))


# ----------------------------------------------------------------------------
# input

def resolve(data, y, d, x, cluster):
    """A ``Simulation`` supplies its table and default column roles."""
    if isinstance(data, Simulation):
        s = data.settings
        y = "y" if y is None else y
        d = s.get("treatment", "d") if d is None else d
        cluster = s.get("cluster", "cluster") if cluster is None else cluster
        x = list(data.x_names) if x is None else x
        data = data.data
    return data, y, d, x, cluster


def read(data, y, d, x=None, cluster=None, *, na_action="fail", binary=False,
         design=None, method="this estimator", allow_no_controls=False,
         weights=None, text=None, fit_settings=None) -> EffectData:
    """Check and extract outcome, treatment, controls, clusters and the case
    weights (``weights``: None, a column name or one number per row;
    ``data.case_weights``).

    ``text``: names of text columns among the controls (as in ``rfp.fit``:
    checked like the other columns, their missing values dropped by
    ``na_action="omit"``; x may then be None, no numeric controls). One
    vocabulary is built from all rows used (``vocab_size`` and
    ``max_tokens`` of ``fit_settings``; unsupervised: neither outcome nor
    treatment enters it), and ``EffectData.text`` holds the token ids.

    Raises ``ValueError`` naming the column for missing columns or values, a
    non-numeric column (or a text column that is not text), a constant
    treatment, a non-binary treatment when ``binary`` (with the values
    seen), and, when ``design="cluster"``, a treatment that varies within a
    cluster (naming one).
    """
    data, y, d, x, cluster = resolve(data, y, d, x, cluster)
    if y is None or d is None:
        raise ValueError("name the outcome (y=...) and the treatment (d=...) columns")
    if cluster is None:
        raise ValueError("cluster= is required: name the column that identifies clusters")
    if design not in (None, "cluster", "individual"):
        raise ValueError(f"design must be None, 'cluster' or 'individual', got {design!r}")
    if na_action not in ("fail", "omit"):
        raise ValueError(f"na_action must be 'fail' or 'omit', got {na_action!r}")
    table = data_mod.as_table(data)
    w_all = data_mod.case_weights(table, weights)
    text = data_mod.text_names(text)
    others = (y, d, cluster, weights if isinstance(weights, str) else None, *text)
    x = [] if x is None and text else data_mod.controls(table, x, others)
    if not x and not text and not allow_no_controls:
        raise ValueError("no controls: pass x=[...] naming at least one numeric column "
                         "(or text=[...] naming text columns)")
    data_mod.check_roles(y, x, cluster, d)
    data_mod.check_text_roles(text, y, x, cluster, d)
    data_mod.require_columns(table, [y, d, *x, *text, cluster])
    for name, role in [(y, "outcome"), (d, "treatment"), *[(c, "control") for c in x]]:
        data_mod.numeric(table, name, role)
    for t in text:
        data_mod.text_column(table.slice(0, 0), t)   # its type, before looking for missing values
    table, kept = data_mod.drop_missing(table, [y, d, *x, *text, cluster], na_action)
    n_dropped = int((~kept).sum())
    table, kept, w, positive = positive_weight_rows(table, kept, data_mod.kept_weights(w_all, kept),
                                                    d, cluster, method)
    yv = data_mod.numeric(table, y, "outcome")
    dv = data_mod.numeric(table, d, "treatment")
    xv = (np.column_stack([data_mod.numeric(table, c, "control") for c in x]) if x
          else np.zeros((table.num_rows, 0)))
    for name, values, role in [(y, yv, "outcome"), (d, dv, "treatment"),
                               *[(c, xv[:, j], "control") for j, c in enumerate(x)]]:
        data_mod.check_magnitudes(values, name, role)
    if np.ptp(yv) == 0:
        raise ValueError(f"outcome column '{y}' is constant (every row is {yv[0]:g}): there is "
                         f"no variation for a treatment to explain")
    codes, labels = data_mod.encode_clusters(table.column(cluster))
    if len(labels) < 2:
        raise ValueError(f"cluster column '{cluster}' has only {len(labels)} cluster(s); "
                         f"cross-fitting by cluster needs at least two")
    seen = np.unique(dv)
    if seen.size < 2:
        raise ValueError(f"treatment column '{d}' is constant (every row is {seen[0]:g}): "
                         f"there is no contrast to estimate")
    if binary and not np.all(np.isin(seen, [0.0, 1.0])):
        shown = [float(v) if v % 1 else int(v) for v in seen[:10]]
        raise ValueError(f"treatment column '{d}' must be binary (0/1) for {method}; values seen: "
                         f"{shown}{' ...' if seen.size > 10 else ''}")
    if design == "cluster":
        lo = np.full(len(labels), np.inf)
        hi = np.full(len(labels), -np.inf)
        np.minimum.at(lo, codes, dv)
        np.maximum.at(hi, codes, dv)
        varies = np.flatnonzero(hi > lo)
        if varies.size:
            raise ValueError(
                f"treatment column '{d}' varies within cluster '{labels[varies[0]]}' (column "
                f"'{cluster}'; {varies.size} such cluster(s)), but design='cluster' says treatment "
                f"is assigned to whole clusters; fix the data or pass design='individual'")
    encoder, tokens = None, None
    if text:
        encoder, tokens = encode_texts({t: data_mod.text_column(table, t) for t in text},
                                       fit_settings or {}, codes)
    return EffectData(yv, dv, xv, codes, labels, x, y, d, cluster, kept, n_dropped, w, positive,
                      tokens, encoder)


def positive_weight_rows(table, kept, w, d, cluster, method):
    """Case weights: refuse a treated or control group of weight 0 and fewer
    than two clusters of positive weight, then drop the rows of weight 0
    (fixest's rule, as ``fixed_effects`` does, so that n, the clusters and
    the degrees of freedom count the same everywhere) and rescale the rest
    by a power of two to a mean near 1 (``data.normalise_weights``). Returns (table, kept rows of the
    data given, weights, the mask of positive rows among the complete ones
    or None)."""
    if w is None:
        return table, kept, None, None
    data_mod.check_weighted_arms(data_mod.numeric(table, d, "treatment"), w)
    codes, labels = data_mod.encode_clusters(table.column(cluster))
    data_mod.check_weighted_clusters(codes, labels, w, method)
    positive = w > 0
    if not positive.all():
        table = table.filter(pa.array(positive))
        kept = kept.copy()
        kept[np.flatnonzero(kept)[~positive]] = False
    return table, kept, data_mod.normalise_weights(w[positive]), positive


def with_case_weights(ed: EffectData, fit_settings: dict) -> dict:
    """The nuisance fits' settings with the case weights of the rows used
    (``ed.w``) in place of the column name or full-length vector given."""
    out = {k: v for k, v in fit_settings.items() if k != "weights"}
    if ed.w is not None:
        out["weights"] = ed.w
    return out


def with_text(ed: EffectData, fit_settings: dict) -> dict:
    """The nuisance fits' settings with text columns among the controls: the
    method's model is the embedding bag ``model="text"``, the ``model``
    given ("mlp" or "linear") its ``head`` (``api._text_settings``, as for
    ``rfp.fit``). Without text columns the settings as given."""
    if ed.text is None:
        if fit_settings.get("model") == "text":
            raise ValueError("model = 'text' needs text columns: name them in text=")
        return fit_settings
    rest = {k: v for k, v in fit_settings.items() if k != "model"}
    model, rest = _text_settings(fit_settings.get("model", DEFAULTS["model"]), rest)
    return {**rest, "model": model}


def treatment_is_clustered(d: np.ndarray, cluster: np.ndarray) -> bool:
    """True when treatment is constant within every cluster."""
    n_groups = int(cluster.max()) + 1
    lo = np.full(n_groups, np.inf)
    hi = np.full(n_groups, -np.inf)
    np.minimum.at(lo, cluster, d)
    np.maximum.at(hi, cluster, d)
    return bool(np.all(hi == lo))


def check_vcov(vcov, method: str) -> str:
    """Only "CR1" for DML and AIPW (module docstring, "Small-cluster
    inference"); a clear error for "CR2" and "wild" (any other value: the
    settings validator's)."""
    vcov = check("vcov", vcov)
    if vcov != "CR1":
        raise NotImplementedError(
            f"vcov = {vcov!r} is not available for {method}: CR2 and the wild cluster bootstrap "
            f"correct OLS residuals for a fixed design's leverage (hat matrix), but {method}'s "
            f"residuals come from cross-fitted nonlinear nuisance models, which have none, and a "
            f"correction of the final step alone would ignore the nuisance estimation error. "
            f"Use vcov = 'CR1' here, and vcov = 'CR2' or 'wild' on the fixed-effects row of "
            f"rfp.compare (or baselines.fixed_effects) for small-cluster inference.")
    return vcov


# ----------------------------------------------------------------------------
# cross-fitting by cluster

def cluster_folds(cluster, folds: int = 5, seed: int = 0, treatment=None) -> np.ndarray:
    """Fold (0..folds−1) of every row, every cluster in exactly one fold.

    Clusters are ordered by their mean treatment (ties in random order) and
    dealt to the folds in turn (fold labels randomly permuted): fold sizes
    differ by at most one cluster, and so do the folds' numbers of treated
    clusters when treatment is at the cluster level, so every fold's
    complement holds treated and untreated clusters.  When the mean
    treatment takes more than two values (a continuous treatment, or one
    that varies within clusters) the sorted order has no ties to break at
    random, so the folds are dealt in a random order within each run of
    ``folds`` consecutive clusters: otherwise every seed would give the same
    partition and repeated cross-fitting (``repeats``) would repeat one split.
    """
    codes = np.unique(np.asarray(cluster), return_inverse=True)[1].reshape(-1)
    n_groups = int(codes.max()) + 1
    folds = int(folds)
    if not 2 <= folds <= n_groups:
        raise ValueError(f"folds must be between 2 and the number of clusters ({n_groups}), got {folds}")
    rng = np.random.default_rng(seed)
    key = np.zeros(n_groups)
    if treatment is not None:
        t = np.asarray(treatment, dtype=float).reshape(-1)
        key = np.bincount(codes, weights=t, minlength=n_groups) / np.bincount(codes, minlength=n_groups)
    order = np.lexsort((rng.random(n_groups), key))
    labels = rng.permutation(folds)[np.arange(n_groups) % folds]
    if np.unique(key).size > 2:
        for start in range(0, n_groups, folds):
            labels[start:start + folds] = rng.permutation(labels[start:start + folds])
    fold_of_cluster = np.empty(n_groups, dtype=np.int64)
    fold_of_cluster[order] = labels
    return fold_of_cluster[codes]


def split_seed(seed: int, s: int) -> int:
    """Seed of fold split s (0, 1, ...) under repeated cross-fitting; split 0
    uses ``seed`` itself, so ``repeats=1`` is plain cross-fitting."""
    return int(seed) + 7919 * int(s)


def check_repeats(repeats) -> int:
    if isinstance(repeats, bool) or int(repeats) != repeats or repeats < 1:
        raise ValueError(f"repeats must be a whole number >= 1, got {repeats!r}")
    return int(repeats)


def median_over_splits(splits: list) -> "Effect":
    """Median aggregation of one estimate over S fold splits (module
    docstring; Chernozhukov et al. 2018, Section 3.4). The nuisances and
    diagnostics are those of the split closest to the median; diagnostics gain
    repeats, split_estimates and converged = every split converged."""
    if len(splits) == 1:
        splits[0].diagnostics.setdefault("repeats", 1)
        return splits[0]
    est = np.array([e.estimate for e in splits])
    se = np.array([e.std_error for e in splits])
    tau = float(np.median(est))
    sigma = float(np.sqrt(np.median(se ** 2 + (est - tau) ** 2)))
    first = splits[int(np.argmin(np.abs(est - tau)))]
    test = t_test(tau, sigma, df=first.df, level=first.level)
    diagnostics = dict(first.diagnostics)
    if "converged" in diagnostics:
        diagnostics["converged"] = bool(all(e.diagnostics.get("converged", True) for e in splits))
    diagnostics["repeats"] = len(splits)
    diagnostics["split_estimates"] = [float(v) for v in est]
    return Effect(first.method, first.estimand, tau, sigma, float(test.ci_low),
                  float(test.ci_high), first.n, first.n_clusters, first.df, first.level,
                  diagnostics, first.nuisance)


def default_repeats(n_clusters: int) -> int:
    """Fold splits when ``repeats`` is not given: 5 with fewer than 100
    clusters, else 1. Evidence (validation/RESULTS.md, 40 clusters): DML's
    95% interval covered 0.875 (low overlap) and 0.930 (high) with one split,
    0.945 and 0.960 with five; one split's SE misses the variation due to the
    split, which shrinks as clusters grow (160 clusters, 5 splits: 0.950)."""
    return 5 if int(n_clusters) < 100 else 1


def split_nuisances(ed: EffectData, folds: int, seed: int, repeats, need, fit_settings,
                    nuisance: str = "select"):
    """For each fold split s (repeated cross-fitting): yields (s, fold, the
    cross-fitted nuisances ``need``), every fit counted on one progress bar.
    ``repeats`` None: ``default_repeats``."""
    repeats = default_repeats(ed.n_clusters) if repeats is None else check_repeats(repeats)
    with over_fits(fit_settings, len(need) * int(folds) * repeats) as settings:
        for s in range(repeats):
            seed_s = split_seed(seed, s)
            fold = cluster_folds(ed.cluster, folds, seed_s, ed.d)
            yield s, fold, nuisances(ed, fold, need, seed=seed_s, nuisance=nuisance, **settings)


def _settings(fit_settings: dict) -> dict:
    if "loss" in fit_settings:
        raise TypeError(LOSS_PER_NUISANCE)
    return {"progress": False, **fit_settings}


def rows_of(settings: dict, rows, n: int) -> dict:
    """The settings of a fit on some of the rows: per-observation ``weights``
    (an array of n numbers) cut to those rows."""
    w = settings.get("weights")
    if w is None:
        return settings
    w = np.asarray(w, dtype=float)
    if w.shape != (n,):
        raise ValueError(f"weights must be one case weight per observation ({n}), got "
                         f"{w.size} number(s)")
    return {**settings, "weights": w[rows]}


def fit_converged(model: FittedModel, rel_tol: float = 1e-3) -> bool:
    """A fit has converged when early stopping ended it (its held-out loss
    stopped improving) or its training objective changed by less than
    ``rel_tol`` (relative) over the last tenth of its steps."""
    if isinstance(model, nz_mod.ClosedFormFit):
        return model.converged
    if model.stopped_early:
        return True
    train = np.asarray(model.history.train, dtype=float)
    if train.size < 2:
        return True
    back = max(1, train.size // 10)
    prev = train[-1 - back]
    return bool(abs(train[-1] - prev) <= rel_tol * max(abs(prev), 1e-12))


def numeric_controls(x) -> np.ndarray:
    """The numeric part of the inputs: x itself, or x["x"] of a text pytree."""
    return x["x"] if is_text_input(x) else x


def take_rows(x, rows):
    """Some rows of the inputs (a matrix or a pytree with a leading row axis)."""
    return jax.tree.map(lambda a: a[rows], x)


def crossfit(x, target, cluster, fold, loss="squared", rows=None, seed=0, what="nuisance",
             rung="method", **fit_settings):
    """Out-of-fold predictions: for each fold k, fit ``target`` on the rows
    outside fold k (restricted to ``rows`` if given, e.g. one treatment arm)
    and predict every row in fold k. ``rung``: "method" (``rfp.fit_arrays``
    with the settings; solved in closed form when they describe a plain
    linear model, ``nuisance.is_closed_form``, and directly when a linear
    model's R_k is quadratic, ``quadratic.is_quadratic``), "linear" or "constant"
    (``nuisance.linear_fit`` / ``constant_fit``). ``x``: a matrix, or the
    text pytree (``EffectData.inputs``), which the method's text model takes
    whole and the closed-form rungs by its numeric controls only. Returns
    (predictions, fitted models)."""
    n = len(target)
    rows = np.ones(n, dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    pred = np.full(n, np.nan)
    models = []
    settings = _settings(fit_settings)
    closed = rung != "method" or nz_mod.is_closed_form({**DEFAULTS, **settings})
    # a linear model under the squared loss: R_k is quadratic, solved directly
    direct = not closed and quadratic.is_quadratic({**DEFAULTS, **settings, "loss": loss})
    if closed or direct:
        x = numeric_controls(x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", alerts.RFPWarning)
        for k in np.unique(fold):
            train = (fold != k) & rows
            test = fold == k
            if np.unique(cluster[train]).size < 2:
                raise ValueError(f"cross-fitting {what}: the training rows outside fold {k} come "
                                 f"from {np.unique(cluster[train]).size} cluster(s); the method "
                                 f"needs at least two (use fewer folds or more clusters)")
            train_settings = rows_of(settings, train, n)
            if closed:
                w = observation_weights(cluster[train], train_settings.get("weights"),
                                        bool(train_settings.get("equal_clusters", False)))
                if rung == "constant":
                    model = nz_mod.constant_fit(target[train], w, loss)
                elif rung == "ridge":
                    model = nz_mod.ridge_fit(x[train], target[train])
                else:
                    model = nz_mod.linear_fit(x[train], target[train], w, loss)
            elif direct:
                model = solve_arrays(x[train], target[train], cluster[train], **train_settings)
            else:
                model = fit_arrays(take_rows(x, train), target[train], cluster[train], loss=loss,
                                   seed=int(seed) + int(k), **train_settings)
            pred[test] = model.predict_arrays(take_rows(x, test))
            models.append(model)
    summarise_fit_warnings(caught, what, len(models))
    return pred, models


def summarise_fit_warnings(caught, what: str, n_fits: int) -> None:
    """One warning per kind (``alerts``) over the cross-fitting fits of a
    nuisance, naming it and counting the fits; other warnings pass on."""
    kinds = {}
    for w in caught:
        if issubclass(w.category, alerts.RFPWarning):
            kinds.setdefault(w.category, []).append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for category, messages in kinds.items():
        warnings.warn(f"{what}: {len(messages)} of {n_fits} cross-fitting fit(s): {messages[0]}",
                      category, stacklevel=4)


def _one_nuisance(x, target, cluster, fold, loss, rows, seed, what, nuisance, fit_settings):
    """(predictions, models, chosen rung, selection table) of one nuisance:
    ``nuisance`` "select" runs the ladder (``rfp.nuisance``), otherwise the
    named rung."""
    if nuisance != "select":
        pred, models = crossfit(x, target, cluster, fold, loss, rows, seed, what, nuisance,
                                **fit_settings)
        return pred, models, nuisance, {}
    settings = {**DEFAULTS, **_settings(fit_settings)}
    # the closed-form rungs take the numeric controls; the method the text too
    p = numeric_controls(x).shape[1]
    ridge = loss == "logistic" and p and settings.get("weights") is None
    rungs = ["constant"] + (["ridge"] if ridge else []) + (["linear"] if p else [])
    if (p or is_text_input(x)) and not (settings.get("model") == "linear"
                                        and nz_mod.is_closed_form(settings)):
        rungs.append("method")
    fits, losses = {}, {}
    use = np.ones(len(target), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    caught = {}
    for rung in rungs:
        with warnings.catch_warnings(record=True) as caught[rung]:
            warnings.simplefilter("always")
            fits[rung] = crossfit(x, target, cluster, fold, loss, rows, seed, what, rung,
                                  **fit_settings)
        w = settings.get("weights")
        losses[rung] = nz_mod.fold_losses(target[use], fits[rung][0][use], cluster[use], loss,
                                          None if w is None else np.asarray(w)[use])
    w = settings.get("weights")   # each cluster's weight: the rows the losses summed
    size = np.bincount(np.unique(cluster[use], return_inverse=True)[1].reshape(-1),
                       weights=None if w is None else np.asarray(w, dtype=float)[use])
    chosen, table = nz_mod.ladder_choice(losses, size)
    for w in caught[chosen]:   # the rungs left behind do not enter the estimate: no warning
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return fits[chosen][0], fits[chosen][1], chosen, table


def nuisances(ed: EffectData, fold: np.ndarray, need=("g", "m"), seed: int = 0,
              nuisance: str = "select", **fit_settings) -> dict:
    """Cross-fitted nuisances by name: g = E[Y|X], m = E[D|X] (logistic for a
    binary D), mu0 / mu1 = E[Y|X, D = 0 / 1]; plus the fitted models, the
    rung chosen for each (``chosen``: "constant", "linear" or "method") and
    the ladder's out-of-fold losses (``selection``)."""
    if nuisance not in nz_mod.NUISANCE_CHOICES:
        raise ValueError(f"nuisance must be one of {list(nz_mod.NUISANCE_CHOICES)}, "
                         f"got {nuisance!r}")
    _settings(fit_settings)
    out, models, chosen, selection = {}, {}, {}, {}
    jobs = []
    if "g" in need:
        jobs.append(("g", ed.y, "squared", None, f"E[{ed.outcome} | X]"))
    if "m" in need:
        jobs.append(("m", ed.d, "logistic" if ed.binary else "squared", None,
                     f"E[{ed.treatment} | X]"))
    for arm in (0, 1):
        if f"mu{arm}" in need:
            jobs.append((f"mu{arm}", ed.y, "squared", ed.d == arm,
                         f"E[{ed.outcome} | X, {ed.treatment} = {arm}]"))
    for name, target, loss, rows, what in jobs:
        out[name], models[name], chosen[name], selection[name] = _one_nuisance(
            ed.inputs, target, ed.cluster, fold, loss, rows, seed, what, nuisance, fit_settings)
    out["models"] = models
    out["chosen"] = chosen
    out["selection"] = selection
    out["converged"] = all(fit_converged(m) for ms in models.values() for m in ms)
    return out


# ----------------------------------------------------------------------------
# the propensity at the level where treatment is assigned

PROPENSITY_PENALTY = "cv"
PENALTY_GRID = tuple(float(v) for v in 10.0 ** np.linspace(-2, 3, 11))


def propensity_level(ed: EffectData, propensity: str = "auto") -> str:
    """"cluster" or "individual": where AIPW fits ê. ``auto`` is "cluster"
    exactly when treatment is constant within every cluster."""
    if propensity not in ("auto", "cluster", "individual"):
        raise ValueError(f"propensity must be 'auto', 'cluster' or 'individual', got {propensity!r}")
    clustered = treatment_is_clustered(ed.d, ed.cluster)
    if propensity == "auto":
        return "cluster" if clustered else "individual"
    if propensity == "cluster" and not clustered:
        raise ValueError(f"propensity='cluster' needs a treatment assigned to whole clusters, but "
                         f"treatment column '{ed.treatment}' varies within some cluster(s) of "
                         f"'{ed.cluster_name}'; use propensity='individual' (or 'auto')")
    return propensity


def ridge_logit(x, d, penalty: float = 1.0, tol: float = 1e-10,
                max_iter: int = 100):
    """Ridge-penalised logistic regression by damped Newton.

    Columns of ``x`` are standardised (mean 0, SD 1 over these rows; a
    constant column is only centred), and (a, b) minimise

        Σ_i [log(1 + exp(η_i)) − d_i η_i] + penalty/2 · ‖b‖²,   η = a + z b,

    the intercept a unpenalised. Returns (predict, info): ``predict(x_new)``
    gives logistic(η) for new rows, ``info`` holds coef (a, b on the
    standardised scale), center, scale, iterations, converged (the largest
    absolute gradient entry below ``tol`` times the number of rows) and
    gradient (that entry)."""
    x = np.asarray(x, dtype=float)
    d = np.asarray(d, dtype=float)
    center = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = np.column_stack([np.ones(len(d)), (x - center) / scale])
    pen = np.full(z.shape[1], float(penalty))
    pen[0] = 0.0
    p_bar = min(max(d.mean(), 1e-6), 1 - 1e-6)
    coef = np.zeros(z.shape[1])
    coef[0] = np.log(p_bar / (1 - p_bar))

    def objective(c):
        eta = z @ c
        return float(np.sum(np.logaddexp(0.0, eta) - d * eta) + 0.5 * np.sum(pen * c * c))

    value = objective(coef)
    converged, grad_max, it = False, np.inf, 0
    for it in range(1, max_iter + 1):
        p = expit(z @ coef)
        grad = z.T @ (p - d) + pen * coef
        grad_max = float(np.max(np.abs(grad)))
        if grad_max <= tol * len(d):
            converged = True
            break
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(pen)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        t = 1.0
        while t > 1e-10:                      # backtracking: never increase the objective
            new = objective(coef - t * step)
            if new <= value + 1e-12 * max(1.0, abs(value)):
                break
            t /= 2
        else:
            break
        coef, value = coef - t * step, new
    info = {"coef": coef, "center": center, "scale": scale, "iterations": it,
            "converged": converged, "gradient": grad_max}

    def predict(x_new):
        x_new = np.asarray(x_new, dtype=float)
        return expit(coef[0] + ((x_new - center) / scale) @ coef[1:])

    return predict, info


def loo_penalty(x, d, grid=PENALTY_GRID) -> tuple[float, np.ndarray, np.ndarray]:
    """The ridge penalty of ``ridge_logit`` chosen by leave-one-out deviance
    with the one-standard-error rule (Hastie, Tibshirani & Friedman, ESL
    7.10): the largest penalty in ``grid`` whose mean deviance is within one
    SE (over the left-out rows) of the smallest. Each row is left out in turn
    and predicted by the fit on the others (standardised on the others).
    Returns (penalty, mean deviance per grid value, its SE), grid ascending."""
    x = np.asarray(x, dtype=float)
    d = np.asarray(d, dtype=float)
    n = len(d)
    grid = np.sort(np.asarray(grid, dtype=float))
    dev = np.empty((len(grid), n))
    for j, lam in enumerate(grid):
        for i in range(n):
            keep = np.arange(n) != i
            p = float(ridge_logit(x[keep], d[keep], lam)[0](x[i:i + 1])[0])
            p = min(max(p, 1e-12), 1 - 1e-12)
            dev[j, i] = -2 * (d[i] * np.log(p) + (1 - d[i]) * np.log(1 - p))
    mean, se = dev.mean(axis=1), dev.std(axis=1, ddof=1) / np.sqrt(n)
    best = int(np.argmin(mean))
    chosen = int(np.flatnonzero(mean <= mean[best] + se[best]).max())
    return float(grid[chosen]), mean, se


def cluster_means(x, cluster, w=None):
    """(G × p matrix of cluster means of x's columns, cluster codes 0..G−1);
    with case weights ``w`` the weighted means (a cluster whose weights are
    all 0 keeps its plain mean)."""
    codes = np.unique(np.asarray(cluster), return_inverse=True)[1].reshape(-1)
    n_groups = int(codes.max()) + 1
    w = np.ones(len(codes)) if w is None else np.asarray(w, dtype=float)
    size = np.bincount(codes, weights=w, minlength=n_groups)
    w = np.where(size[codes] > 0, w, 1.0)
    size = np.bincount(codes, weights=w, minlength=n_groups)
    x = np.asarray(x, dtype=float).reshape(len(codes), -1)
    means = np.column_stack([np.bincount(codes, weights=w * x[:, j], minlength=n_groups)
                             for j in range(x.shape[1])]) / size[:, None]
    return means, codes


def cluster_propensity(x, d, cluster, fold, penalty: float | str = PROPENSITY_PENALTY,
                       treatment="d", w=None):
    """Cross-fitted propensity for a treatment assigned to whole clusters.

    When treatment is assigned cluster by cluster, the assignment mechanism
    is P(D_c = 1 | cluster c's covariates): there are G Bernoulli draws, not
    n. A model fitted on individual rows sees each cluster's single draw
    repeated n_c times and, when flexible, separates the few training
    clusters (the validation study found propensities of 0.003–0.999 where
    the truth was 0.3–0.7, and inverse weights of up to 100). So the
    propensity is fitted at the level of assignment, as in the multilevel
    propensity models of Li, Zaslavsky & Landrum (2013) and Ben-Michael &
    Feller (matrix constraints for multilevel observational studies;
    the assignment probability depends on site-level covariates V_j,
    with a regularised logistic/calibrated propensity): one row per cluster,
    features the cluster means of the controls (a cluster-level covariate
    is its own mean), and its predicted ê_c given to every row of cluster c.

    The model is a ridge-penalised logistic regression (``ridge_logit``),
    not the bi-level network: with 15–40 training rows a linear index is what
    the data can support, Newton reaches the penalised MLE to machine
    precision in a few iterations (no learning rate, step budget or early
    stopping to tune, nothing to compile), and the ridge keeps the fit
    finite under the (quasi-)separation that few clusters make likely (the
    usual overlap concern of inverse probability weighting: extreme ê mean
    extreme weights).

    ``penalty`` = "cv" (default) picks the ridge penalty in each training
    fold by leave-one-cluster-out deviance over ``PENALTY_GRID`` (0.01 to
    1000) with the one-SE rule (``loo_penalty``), nested inside the
    cross-fitting, so a cluster's ê never depends on its own treatment. When
    the covariates say little about assignment the rule takes the largest
    penalty and ê is nearly the training share treated (AIPW then leans on
    its outcome models, as double robustness allows). A float fixes the
    penalty (with standardised features, λ is a N(0, 1/λ) prior on the
    log-odds change per SD of each cluster covariate). Why not a fixed
    λ = 1: on the tests' design (40 clusters, high overlap, true ê in
    0.3–0.7, six cluster-mean features) it still gave ê outside [0.05, 0.95]
    in 29 of 40 replications, and AIPW an SD of 1.2–1.5 in the validation
    study (DML: 0.26–0.33); the plain LOO minimum, without the one-SE rule,
    in 6 of 40.

    With case weights ``w`` the features are the weighted cluster means; the
    fit keeps one row per cluster (one assignment each).

    Returns (ê per row, info): info["folds"] holds each fold's ``ridge_logit``
    info (with its ``penalty``), info["converged"] whether every fit converged.
    """
    xc, codes = cluster_means(x, cluster, w)
    n_groups = xc.shape[0]
    d = np.asarray(d, dtype=float)
    dc = np.bincount(codes, weights=d, minlength=n_groups) / np.bincount(codes, minlength=n_groups)
    if not np.all((dc == 0) | (dc == 1)):
        raise ValueError(f"a cluster-level propensity needs treatment '{treatment}' constant "
                         f"within clusters")
    fold = np.asarray(fold)
    fold_c = np.empty(n_groups, dtype=fold.dtype)
    fold_c[codes] = fold
    e_c = np.full(n_groups, np.nan)
    infos = []
    for k in np.unique(fold_c):
        train = fold_c != k
        if np.unique(dc[train]).size < 2:
            raise ValueError(f"cross-fitting the cluster-level propensity of '{treatment}': the "
                             f"clusters outside fold {k} are all "
                             f"{'treated' if dc[train][0] == 1 else 'untreated'}; use fewer folds")
        lam = loo_penalty(xc[train], dc[train])[0] if penalty == "cv" else float(penalty)
        predict, info = ridge_logit(xc[train], dc[train], lam)
        info["penalty"] = lam
        e_c[~train] = predict(xc[~train])
        infos.append(info)
    return e_c[codes], {"folds": infos, "converged": all(i["converged"] for i in infos)}


def aipw_propensity(ed: EffectData, fold, propensity: str = "auto",
                    penalty: float | str = PROPENSITY_PENALTY, nz: dict | None = None,
                    seed: int = 0, **fit_settings):
    """(ê per row, info) for AIPW: the cluster-level propensity (``penalty``:
    "cv" or a float, see ``cluster_propensity``), or the method's
    cross-fitted E[D | X] (``nz["m"]`` if already fitted). info: propensity
    (the level), propensity_converged, propensity_penalty (per fold; cluster
    level only)."""
    level = propensity_level(ed, propensity)
    if level == "cluster":
        e, info = cluster_propensity(ed.x, ed.d, ed.cluster, fold, penalty, ed.treatment, ed.w)
        return e, {"propensity": level, "propensity_converged": info["converged"],
                   "propensity_penalty": [f["penalty"] for f in info["folds"]]}
    if nz is None or "m" not in nz:
        nz = nuisances(ed, fold, ("m",), seed=seed, **fit_settings)
    return nz["m"], {"propensity": level, "propensity_converged": nz["converged"]}


# ----------------------------------------------------------------------------
# estimators from cross-fitted nuisances

def kish_ess(w) -> float:
    w = np.abs(np.asarray(w, dtype=float))
    top = float(np.max(w)) if w.size else 0.0
    if top > 0 and np.isfinite(top):
        w = w / top             # scale-free: no underflow or overflow of the squares
    s2 = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / s2 if s2 > 0 else 0.0


def plm_from_residuals(y, d, g, m, cluster, level=0.95, warn_share=WARN_SHARE,
                       treatment="d", method="dml", w=None) -> Effect:
    """τ̂ = Σ w V U / Σ w V² with CR1 (K = 1) by cluster and t on G − 1 df
    (case weights ``w``, default 1: the weighted residual-on-residual
    regression, whose cluster scores are Σ_{i∈g} w_i V_i e_i)."""
    u = y - g
    v = d - m
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    vv = float(w @ (v * v))
    if vv <= 0:
        raise ValueError(f"the residual D − m̂(X) of treatment '{treatment}' is zero: "
                         f"there is no variation left to estimate τ from")
    tau = float(w @ (v * u)) / vv
    e = u - tau * v
    codes = np.unique(cluster, return_inverse=True)[1].reshape(-1)
    n_clusters = int(codes.max()) + 1
    root = np.sqrt(w)
    se = float(np.sqrt(cr1_vcov((root * v)[:, None], root * e, codes, k=1)[0, 0]))
    test = t_test(tau, se, df=n_clusters - 1, level=level)
    share = 1.0 - float(np.var(v)) / float(np.var(d))
    if warn_share is not None and share > warn_share:
        warnings.warn(
            f"rfp: the nuisance model explains {share:.1%} of the variance of treatment "
            f"'{treatment}' (variance_share = {share:.3f} > {warn_share}). By Frisch-Waugh-Lovell "
            f"τ rests only on D − E[D|X]; what is left of it is small and likely functional-form-"
            f"induced (treatment is (nearly) a function of the controls, e.g. of cluster-level "
            f"controls; 'Regularizing the Forward Pass', eq. 2-3). Check overlap, and whether "
            f"the controls determine treatment, before trusting this estimate.",
            FunctionalFormWarning, stacklevel=3)
    diagnostics = {"variance_share": share, "ess": kish_ess(w * v * v),
                   "outcome_r2": 1.0 - float(np.var(u)) / float(np.var(y)),
                   "largest_cluster_share": largest_cluster_share(w * v * e, codes)}
    return Effect(method, "PLM", tau, se, float(test.ci_low), float(test.ci_high), len(y),
                  n_clusters, n_clusters - 1, level, diagnostics,
                  {"g": g, "m": m, "residual_y": u, "residual_d": v})


def crump_threshold(e) -> float:
    """Crump, Hotz, Imbens & Mitnik (2009) optimal trimming threshold α:
    with h(e) = 1/(e(1 − e)), no trimming (α = 0) if max h ≤ 2 mean h; else
    the α with 1/(α(1 − α)) = 2 mean[h | h ≤ 1/(α(1 − α))], found as the
    smallest γ = 1/(α(1 − α)) among the sorted h with γ ≥ 2·mean(h ≤ γ)."""
    e = np.clip(np.asarray(e, dtype=float), 1e-12, 1 - 1e-12)
    h = np.sort(1.0 / (e * (1.0 - e)))
    if h[-1] <= 2.0 * h.mean():
        return 0.0
    below = np.cumsum(h) / np.arange(1, h.size + 1)
    ok = np.flatnonzero(h >= 2.0 * below)
    gamma = float(h[ok[0]]) if ok.size else float(h[-1])
    return float(0.5 - np.sqrt(max(0.25 - 1.0 / gamma, 0.0)))


def largest_cluster_share(psi, cluster) -> float:
    """max_g S_g² / Σ_g S_g², S_g = Σ_{i∈g} ψ_i: the share of the
    cluster-robust variance carried by its largest cluster."""
    codes = np.unique(cluster, return_inverse=True)[1].reshape(-1)
    sums = np.bincount(codes, weights=psi) ** 2
    return float(sums.max() / sums.sum()) if sums.sum() > 0 else float("nan")


# thresholds of ``overlap_checks``
# (largest_cluster_share: in randomized trials with 40 clusters, validation/RESULTS.md,
# the largest cluster's share exceeded 0.25 in 12-20% of samples, 0.4 in 0-6%)
OVERLAP_LIMITS = {"clipped_share": 0.05, "largest_cluster_share": 0.4,
                  "variance_share_below": -0.05, "propensity_outside": (0.05, 0.95)}


class OverlapWarning(UserWarning):
    """An AIPW/DML diagnostic signals weak overlap or a poor nuisance model."""


def overlap_checks(effect: Effect, warn: bool = True) -> Effect:
    """Adds overlap_warnings (a list of sentences) to ``effect.diagnostics``
    and warns (``OverlapWarning``) when any of them holds: more than 5% of
    propensities clipped, one cluster carrying over 40% of the clustered
    variance, ê outside [0.05, 0.95], or variance_share below −0.05 (the
    out-of-fold first stage predicts treatment worse than its mean)."""
    dg, lim, out = effect.diagnostics, OVERLAP_LIMITS, []
    if dg.get("clipped_share", 0.0) > lim["clipped_share"]:
        out.append(f"{dg['clipped_share']:.0%} of propensities were clipped to "
                   f"[{dg['clip']}, {1 - dg['clip']}]")
    lo, hi = lim["propensity_outside"]
    if "propensity_min" in dg and (dg["propensity_min"] < lo or dg["propensity_max"] > hi):
        out.append(f"propensities range over [{dg['propensity_min']:.3g}, "
                   f"{dg['propensity_max']:.3g}] (beyond [{lo}, {hi}]: little overlap or an "
                   f"over-flexible propensity model; consider trim='crump')")
    if dg.get("largest_cluster_share", 0.0) > lim["largest_cluster_share"]:
        out.append(f"one cluster carries {dg['largest_cluster_share']:.0%} of the "
                   f"cluster-robust variance")
    if dg.get("variance_share", 0.0) < lim["variance_share_below"]:
        out.append(f"variance_share = {dg['variance_share']:.3f}: the out-of-fold treatment "
                   f"model predicts worse than a constant")
    dg["overlap_warnings"] = out
    if out and warn:
        warnings.warn(f"rfp {effect.method} ({effect.estimand}): " + "; ".join(out),
                      OverlapWarning, stacklevel=3)
    return effect


def aipw_from_nuisances(y, d, e_hat, mu0, mu1, cluster, estimand="ATE", clip=0.01,
                        level=0.95, method="aipw", trim=None, w=None) -> Effect:
    """The AIPW estimate and its cluster-robust influence-function SE;
    ``trim`` (None, "crump" or α) restricts the average to rows with ê in
    [α, 1 − α] (``aipw``). Case weights ``w``: the weighted mean of the score,
    τ̂ = Σ w φ / Σ w (ATT: Σ w s / Σ w D), ψ_i = w_i (φ_i − τ̂) / mean(w)."""
    if estimand not in ("ATE", "ATT"):
        raise ValueError(f"estimand must be 'ATE' or 'ATT', got {estimand!r}")
    if not 0 <= clip < 0.5:
        raise ValueError(f"clip must lie in [0, 0.5), got {clip}")
    alpha = 0.0
    if trim is not None:
        if isinstance(trim, str):
            if trim != "crump":
                raise ValueError(f"trim must be None, 'crump' or a number in (0, 0.5), got {trim!r}")
            alpha = crump_threshold(e_hat)
        else:
            alpha = float(trim)
            if not 0 < alpha < 0.5:
                raise ValueError(f"trim must be None, 'crump' or a number in (0, 0.5), got {trim!r}")
        keep = (e_hat >= alpha) & (e_hat <= 1 - alpha)
        if keep.sum() == 0 or np.unique(d[keep]).size < 2:
            raise ValueError(f"trimming at alpha = {alpha:.3g} leaves no treated or no untreated rows")
        out = aipw_from_nuisances(y[keep], d[keep], e_hat[keep], mu0[keep], mu1[keep],
                                  np.asarray(cluster)[keep], estimand, clip, level, method,
                                  w=None if w is None else np.asarray(w)[keep])
        # per-row nuisances stay full length; scores are 0 on trimmed rows
        for name in ("psi", "phi"):
            if name in out.nuisance:
                full = np.zeros(len(y))
                full[keep] = out.nuisance[name]
                out.nuisance[name] = full
        out.nuisance.update(e=e_hat, mu0=mu0, mu1=mu1, kept=keep.astype(float))
        if (~keep).any():
            out.estimand = f"{estimand} (trimmed)"
        out.diagnostics.update(trim_alpha=alpha, n_trimmed=int((~keep).sum()),
                               trimmed_estimand=f"{estimand} among rows with propensity in "
                                                f"[{alpha:.3g}, {1 - alpha:.3g}]")
        return out
    n_clipped = int(np.sum((e_hat < clip) | (e_hat > 1 - clip)))
    e = np.clip(e_hat, clip, 1 - clip)
    r0 = y - mu0
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    if estimand == "ATE":
        phi = mu1 - mu0 + d * (y - mu1) / e - (1 - d) * r0 / (1 - e)
        tau = float(w @ phi / w.sum())
        psi = w * (phi - tau) / w.mean()
        control_w = w / (1 - e)
        scores = {"phi": phi}
    else:
        if not float(w @ d) > 0:
            raise ValueError("the treated rows all have case weight 0: the ATT is not defined")
        score = d * r0 - (1 - d) * e / (1 - e) * r0
        tau = float(w @ score / (w @ d))
        psi = w * (score - d * tau) / (w @ d / len(d))
        control_w = w * e / (1 - e)
        scores = {}
    se = cluster_if_se(psi, cluster)
    codes = np.unique(cluster, return_inverse=True)[1].reshape(-1)
    n_clusters = int(codes.max()) + 1
    test = t_test(tau, se, df=n_clusters - 1, level=level)
    diagnostics = {
        "n_clipped": n_clipped, "clip": clip, "clipped_share": n_clipped / len(y),
        "propensity_min": float(e_hat.min()), "propensity_max": float(e_hat.max()),
        "largest_cluster_share": largest_cluster_share(psi, cluster),
        "ess": kish_ess(control_w[d == 0]),
        "variance_share": 1.0 - float(np.var(d - e_hat)) / float(np.var(d)),
    }
    return Effect(method, estimand, tau, se, float(test.ci_low), float(test.ci_high), len(y),
                  n_clusters, n_clusters - 1, level, diagnostics,
                  {"e": e_hat, "mu0": mu0, "mu1": mu1, "psi": psi, **scores})


# ----------------------------------------------------------------------------
# public estimators

def dml_plm(data, y=None, d=None, x=None, cluster=None, *, folds: int = 5, seed: int = 0,
            repeats: int | None = None, design=None, level: float = 0.95,
            warn_share: float | None = WARN_SHARE, na_action: str = "fail",
            vcov: str = "CR1", nuisance: str = "select", fold=None, text=None,
            **fit_settings) -> Effect:
    """Partially linear model by double ML with cluster-fold cross-fitting
    (module docstring); ``repeats`` > 1 repeats it over fold splits and takes
    the median (None: ``default_repeats``, 5 below 100 clusters). ``nuisance``:
    "select" (the ladder constant → linear → the method, by cross-validation
    across cluster folds, ``rfp.nuisance``), "method", "linear" or
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
