"""Same data, same table (docs/DESIGN.md, "Comparisons"): the method's effects
beside fixed effects, balancing weights and a kernel smoother.

``compare`` returns a ``Comparison``: one Arrow table (``.table``; the
Comparison answers every pyarrow.Table method too) with a readable repr,
``summary()`` and ``to_pandas()``, a row per (method, estimand):

fixed_effects       OLS of y on d + controls with strata fixed effects, by
                    cluster (``baselines.fixed_effects``) with ``vcov`` "CR1"
                    (default), "CR2" (Satterthwaite df) or "wild" (wild
                    cluster bootstrap p-value and interval around the CR1
                    SE). Estimand "OLS": a
                    regression coefficient, i.e. a variance-weighted effect (the
                    linear projection's weights). variance_share: the share of
                    Var(D) the linear first stage (controls + strata) explains.
entropy_balancing   ATT; Hainmueller weights on the controls.
cluster_balancing   ATT; weights on control clusters (only when treatment is
                    constant within clusters), ICC-aware dispersion penalty.
dml, aipw           the method (the settings passed in), cluster-fold
                    cross-fitting (``rfp.effects``); AIPW gives ATE and ATT,
                    its propensity at the level of assignment
                    (``propensity``: with a treatment constant within clusters,
                    ``effects.propensity.cluster_propensity`` on cluster means; else the
                    method's E[D | X], the one DML uses).
kernel              ATT by imputation: μ̂0 is Nadaraya–Watson on the controls
                    with a leave-cluster-out CV bandwidth, τ̂ = mean_T(Y − μ̂0(X)).
dml_maml, dml_erm   DML with α = 0 (MAML) and α = 1 (ERM) nuisances.

Every other row uses CR1-type variances with t on G − 1 (``se_type`` "CR1"):
``vcov`` applies to the fixed-effects row only (``effects.reading.check_vcov`` says
why DML and AIPW have no CR2 or bootstrap option). Columns ``p_value``
(two-sided, of estimate = 0), ``df`` and ``se_type`` give each row's test.
With ``vcov = "CR1"`` and fewer than 30 clusters a ``SmallClusterWarning``
recommends CR2 or the bootstrap.

Standard errors of the weighting estimators. Entropy, cluster balancing and
the kernel imputation are all weighted differences in means,
τ̂ = ȳ_T − Σ_C w_i y_i / Σ_C w_i (for the kernel, w_j = Σ_{i∈T} L_ij, the
smoother's weight on control j summed over treated units). Their SE is the
cluster-robust variance (``inference.cluster_robust.cluster_if_se``) of the linearisation

    ψ_i = n/n_1 · D_i (r_i − r̄_T) − n/Σ_C w · (1 − D_i) w_i r_i,

where r_i is the outcome residual: for the balancing weights, from the
w-weighted least squares of y on (1, balanced covariates) among controls (the
calibration / GREG linearisation, which accounts for the balance
constraints; τ̂ is unchanged because the weights balance those covariates);
for the kernel, r_i = y_i − μ̂0(x_i), the bandwidth treated as fixed.

``ess`` is Kish's effective sample size of the control weights, in
observations (for DML and FE, of the FWL weights V_i² = (D_i − m̂(X_i))²),
except for cluster balancing, whose weights are per cluster: there it counts
control clusters. ``converged`` is the
solver's flag (balancing), every nuisance fit's flag (``effects.crossfit.fit_converged``),
or, for the kernel, a CV bandwidth inside the grid."""
from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa

from rfp import alerts, results
from rfp.baselines import kernel as kernel_mod
from rfp.baselines.balancing.balance import split_by_level
from rfp.baselines.balancing.tables import cluster_balance_from_table, entropy_balance_from_table
from rfp.baselines.fixed_effects import demean, fixed_effects
from rfp.data import as_table, encode_clusters
from rfp.diagnostics import effective_sample_size, residual_icc
from rfp.effects.crossfit import nuisances
from rfp.effects.folds import (
    check_repeats,
    cluster_folds,
    default_repeats,
    median_over_splits,
    split_seed,
)
from rfp.effects.propensity import PROPENSITY_PENALTY, aipw_propensity, propensity_level
from rfp.effects.reading import read, resolve, treatment_is_clustered, with_case_weights
from rfp.effects.result import Effect
from rfp.effects.scores import (
    WARN_SHARE,
    FunctionalFormWarning,
    aipw_from_nuisances,
    kish_ess,
    overlap_checks,
    plm_from_residuals,
)
from rfp.inference.cluster_robust import cluster_if_se
from rfp.inference.small_clusters import warn_small_clusters
from rfp.inference.t_test import t_test
from rfp.inference.weighted_mean import weighted_att
from rfp.progress import over_fits
from rfp.settings import validate
from rfp.simulate import Simulation

METHODS = ("fixed_effects", "entropy_balancing", "cluster_balancing", "dml", "aipw", "kernel",
           "dml_maml", "dml_erm")
CROSS_FITTED = ("dml", "aipw", "dml_maml", "dml_erm")  # the methods that need folds
COLUMNS = ("method", "estimand", "estimate", "std_error", "ci_low", "ci_high", "n", "clusters",
           "ess", "converged", "variance_share", "imbalance", "p_value", "df", "se_type")


# ----------------------------------------------------------------------------
# the result

class Comparison:
    """``compare``'s result: the Arrow table ``table`` (one row per method
    and estimand; columns in the module docstring) with a readable repr,
    ``summary()`` and ``to_pandas()``. Attributes it lacks come from the
    table (``column``, ``to_pylist``, ``num_rows``, ...), and it passes to
    ``pyarrow.table()`` and any Arrow consumer as the table itself."""

    def __init__(self, table: pa.Table, outcome: str = "", treatment: str = "",
                 level: float = 0.95):
        self.table = table
        self.outcome, self.treatment, self.level = outcome, treatment, level

    def __getattr__(self, name):
        if name == "table":                  # not yet set (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.table, name)

    def __arrow_c_stream__(self, requested_schema=None):
        return self.table.__arrow_c_stream__(requested_schema)

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, key):
        return self.table[key]

    def to_pandas(self):
        """The table as a pandas DataFrame."""
        return self.table.to_pandas()

    def summary(self):
        """Coefficient table (pandas, indexed by method and estimand):
        estimate, std_error, t, p_value, ci_low, ci_high, df, se_type."""
        out = self.to_pandas().set_index(["method", "estimand"])
        out["t"] = out["estimate"] / out["std_error"]
        return out[["estimate", "std_error", "t", "p_value", "ci_low", "ci_high", "df",
                    "se_type"]]

    def __repr__(self) -> str:
        rows = self.table.to_pylist()
        columns = ["method", "estimand", "estimate", "std_error", "ci_low", "ci_high",
                   "p_value", "se_type", "ess", "converged"]
        if "truth" in self.table.column_names:
            columns += ["truth", "error"]
        notes = [(r["method"], r["note"]) for r in rows if r["note"]]
        head = f"rfp comparison: effect of {self.treatment} on {self.outcome}"
        if rows:
            head += (f"; {rows[0]['n']} observations in {rows[0]['clusters']} clusters; "
                     f"{self.level:.0%} intervals")
        lines = [head, results.text_table(rows, columns)]
        lines += [f"[{k}] {m}: {note}" for k, (m, note) in enumerate(notes, 1)]
        return "\n".join(lines)


def _row(method, estimand, estimate, se, n, clusters, level, ess=np.nan, converged=True,
         share=np.nan, note="", imbalance=np.nan):
    """A table row with CR1-type inference: t on G − 1."""
    if np.isfinite(estimate) and np.isfinite(se) and se > 0:
        test = t_test(estimate, se, df=clusters - 1, level=level)
        lo, hi, p = float(test.ci_low), float(test.ci_high), float(test.p)
    else:
        lo = hi = p = np.nan
    return {"method": method, "estimand": estimand, "estimate": float(estimate),
            "std_error": float(se), "ci_low": lo, "ci_high": hi, "n": int(n),
            "clusters": int(clusters), "ess": float(ess), "converged": bool(converged),
            "variance_share": float(share), "imbalance": float(imbalance), "p_value": p,
            "df": float(clusters - 1), "se_type": "CR1", "note": note}


def _skipped(method, estimand, ctx, why):
    """A row of NaN for a method these data leave out, saying why."""
    ed = ctx["ed"]
    return _row(method, estimand, np.nan, np.nan, len(ed.y), ed.n_clusters, ctx["level"],
                converged=False, note=f"left out: {why}")


def _effect_row(method, e: Effect, converged, note=""):
    return _row(method, e.estimand, e.estimate, e.std_error, e.n, e.n_clusters, e.level,
                e.diagnostics.get("ess", np.nan), converged,
                e.diagnostics.get("variance_share", np.nan), note)


# ----------------------------------------------------------------------------
# one function per comparison; each returns a list of rows

def _fixed_effects(ctx):
    ed, strata = ctx["ed"], ctx["strata"]
    fe = ["stratum"] if strata is not None else []
    fit = fixed_effects(ctx["table"], "y", "d", controls=ctx["x_cols"], fe=fe, cluster="cluster",
                        weights=None if ed.w is None else "w", level=ctx["level"],
                        vcov=ctx["vcov"], seed=ctx["seed"],
                        bootstrap_draws=ctx["bootstrap_draws"],
                        bootstrap_weights=ctx["bootstrap_weights"])
    row = fit.row()
    # the linear first stage of FWL: D on controls (+ strata), eq. 2 of the paper
    both = np.column_stack([ed.d, ed.x])
    both = demean(both, [strata])[0] if strata is not None else both - both.mean(axis=0)
    v = both[:, 0]
    if both.shape[1] > 1:
        v = v - both[:, 1:] @ np.linalg.lstsq(both[:, 1:], both[:, 0], rcond=None)[0]
    share = 1.0 - float(np.var(v)) / float(np.var(ed.d))
    out = _row("fixed_effects", "OLS", row["estimate"], row["std_error"], fit.n, fit.n_clusters,
               ctx["level"], kish_ess(v * v), fit.converged, share)
    out.update(ci_low=row["ci_low"], ci_high=row["ci_high"], p_value=row["p"], df=row["df"],
               se_type=fit.se_type)
    if fit.se_type == "wild":
        b = fit.bootstrap
        out["note"] = (f"wild cluster bootstrap (null imposed, {b['weights']} weights, "
                       f"{b['draws']} draws{', all sign vectors' if b['full_enumeration'] else ''},"
                       f" seed {b['seed']}): p-value and interval; std_error is CR1")
    return [out]


def _balance_note(res) -> str:
    """What a balancing row's note says about the balance reached (the
    solver's message unless balance is exact)."""
    return "" if res.balance == "exact" else res.message


def _entropy_balancing(ctx):
    ed = ctx["ed"]
    if not ctx["x_cols"]:
        return [_skipped("entropy_balancing", "ATT", ctx, "needs controls to balance")]
    if not ctx["binary"]:
        return [_skipped("entropy_balancing", "ATT", ctx, "binary treatment only (weights "
                         "balance controls on treated units; a continuous dose has no such groups)")]
    fit = entropy_balance_from_table(ctx["table"], "d", ctx["x_cols"],
                                     weights=None if ed.w is None else "w")
    tau, se = weighted_att(ed.y, ed.d, fit.weights, ed.cluster, ed.x)
    res = fit.result
    return [_row("entropy_balancing", "ATT", tau, se, len(ed.y), ed.n_clusters, ctx["level"],
                 fit.ess, res.balance != "none", note=_balance_note(res),
                 imbalance=float(np.max(np.abs(res.std_imbalance))))]


def _cluster_balancing(ctx):
    ed = ctx["ed"]
    if not ctx["binary"]:
        return [_skipped("cluster_balancing", "ATT", ctx, "binary treatment only")]
    if not ctx["clustered"]:
        return []
    if not ctx["x_cols"]:
        return [_skipped("cluster_balancing", "ATT", ctx, "needs controls to balance")]
    if ed.w is not None:
        return [_skipped("cluster_balancing", "ATT", ctx, "takes no case weights (weights)")]
    individual, cluster_level = split_by_level(ctx["table"], ctx["x_cols"], "cluster")
    control = ed.d == 0
    icc = (ctx["icc"] if ctx["icc"] is not None
           else residual_icc(ed.y[control], ed.x[control], ed.cluster[control]))
    fit = cluster_balance_from_table(ctx["table"], "d", individual, "cluster", icc,
                                     cluster_x=cluster_level)
    res = fit.result
    if not np.all(np.isfinite(fit.weights)):
        return [_row("cluster_balancing", "ATT", np.nan, np.nan, len(ed.y), ed.n_clusters,
                     ctx["level"], np.nan, False, note=res.message)]
    cols = [ctx["x_cols"].index(c) for c in individual + cluster_level]
    tau, se = weighted_att(ed.y, ed.d, fit.weights, ed.cluster, ed.x[:, cols])
    return [_row("cluster_balancing", "ATT", tau, se, len(ed.y), ed.n_clusters, ctx["level"],
                 res.ess, res.solved, note=_balance_note(res),
                 imbalance=float(np.max(np.abs(res.std_imbalance))))]


def _kernel(ctx):
    ed = ctx["ed"]
    if ed.w is not None:
        return [_skipped("kernel", "ATT", ctx, "takes no case weights (weights)")]
    if not ctx["binary"]:
        return [_skipped("kernel", "ATT", ctx, "binary treatment only (imputes untreated "
                         "outcomes of treated units)")]
    if not ctx["x_cols"]:
        return [_skipped("kernel", "ATT", ctx, "needs controls to smooth over")]
    t, c = ed.d == 1, ed.d == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kfit = kernel_mod.fit(ed.x[c], ed.y[c], ed.cluster[c])
    edge = [str(w.message) for w in caught]
    zt = (ed.x[t] - kfit.x_mean) / kfit.x_scale
    sq = kernel_mod._sq_dist(zt, kfit.z)
    k = np.exp(-(sq - sq.min(axis=1, keepdims=True)) / (2 * kfit.bandwidth ** 2))
    smoother = k / k.sum(axis=1, keepdims=True)          # (n1, n0): μ̂0(x_T) = L y_C
    mu0_t = smoother @ ed.y[c]
    w = np.zeros(len(ed.y))
    w[c] = smoother.sum(axis=0)
    n, n1 = len(ed.y), int(t.sum())
    tau = float(np.mean(ed.y[t] - mu0_t))
    r = np.zeros(n)
    r[t] = ed.y[t] - mu0_t
    # leave-cluster-out residuals: an in-sample residual of a smoother is shrunk
    # towards 0 by its own weight (and more so at small bandwidths)
    r[c] = ed.y[c] - kernel_mod.leave_cluster_out(kfit, ed.cluster[c])
    psi = np.zeros(n)
    psi[t] = n / n1 * (r[t] - tau)
    psi[c] = -n / n1 * w[c] * r[c]
    se = cluster_if_se(psi, ed.cluster)
    return [_row("kernel", "ATT", tau, se, n, ed.n_clusters, ctx["level"],
                 effective_sample_size(w[c]), not edge, note="; ".join(edge))]


def _method_nuisances(ctx, split, alpha=None):
    """The method's cross-fitted nuisances on fold split ``split``, fitted
    once and shared by the DML and AIPW rows."""
    settings = dict(ctx["settings"])
    if alpha is not None:
        settings["alpha"] = alpha
    key = ("nz", alpha, split)
    if key not in ctx:
        need = ("g", "m")
        if alpha is None and ctx["aipw"]:
            individual_e = ctx["propensity_level"] == "individual"
            need = ("mu0", "mu1") + (("m",) if ctx["dml"] or individual_e else ()) + \
                (("g",) if ctx["dml"] else ())
        # MAML's and ERM's rows compare the objectives: their nuisances are the method's
        ctx[key] = nuisances(ctx["ed"], ctx["folds"][split], need,
                                seed=split_seed(ctx["seed"], split),
                                nuisance=ctx["nuisance"] if alpha is None else "method",
                                **settings)
    return ctx[key]


def _dml(ctx, name="dml", alpha=None):
    ed = ctx["ed"]
    if not ctx["x_cols"]:
        return [_skipped(name, "PLM", ctx, "needs controls for its nuisance models (the "
                         "fixed_effects row without controls is the difference in means)")]
    splits = []
    for s in range(len(ctx["folds"])):
        nz = _method_nuisances(ctx, s, alpha)
        e = plm_from_residuals(ed.y, ed.d, nz["g"], nz["m"], ed.cluster, ctx["level"],
                                  ctx["warn_share"] if s == 0 else None, ctx["treatment"], name,
                                  ed.w)
        e.diagnostics["converged"] = nz["converged"]
        e.diagnostics["nuisance_models"] = {k: nz["chosen"][k] for k in ("g", "m")}
        splits.append(e)
    e = overlap_checks(median_over_splits(splits), warn=False)
    return [_effect_row(name, e, e.diagnostics["converged"], _models_note(e))]


def _models_note(e) -> str:
    """The chosen nuisance models and any overlap warnings, for a row's note."""
    chosen = e.diagnostics.get("nuisance_models", {})
    parts = (["nuisances: " + ", ".join(f"{k}={v}" for k, v in chosen.items())] if chosen else [])
    return "; ".join(parts + e.diagnostics.get("overlap_warnings", []))


def _aipw(ctx):
    ed = ctx["ed"]
    if not ctx["binary"]:
        return [_skipped("aipw", "", ctx, "binary treatment only (ATE/ATT of a 0/1 treatment; "
                         "for a continuous treatment see the dml rows)")]
    if not ctx["x_cols"]:
        return [_skipped("aipw", "", ctx, "needs controls for its nuisance models")]
    by_estimand = {"ATE": [], "ATT": []}
    for s, fold in enumerate(ctx["folds"]):
        nz = _method_nuisances(ctx, s)
        e_hat, e_info = aipw_propensity(ed, fold, ctx["propensity_level"],
                                           ctx["propensity_penalty"], nz=nz)
        for estimand, splits in by_estimand.items():
            e = aipw_from_nuisances(ed.y, ed.d, e_hat, nz["mu0"], nz["mu1"], ed.cluster,
                                       estimand, ctx["clip"], ctx["level"], trim=ctx["trim"],
                                       w=ed.w)
            e.diagnostics["converged"] = bool(nz["converged"] and e_info["propensity_converged"])
            e.diagnostics["nuisance_models"] = {
                k: v for k, v in nz["chosen"].items() if k in ("mu0", "mu1", "m")}
            if e_info["propensity"] == "cluster":
                e.diagnostics["nuisance_models"]["e"] = "ridge logit on cluster means"
            splits.append(e)
    rows = []
    for estimand, splits in by_estimand.items():
        e = overlap_checks(median_over_splits(splits), warn=False)
        clipped = e.diagnostics.get("n_clipped", 0)
        note = "; ".join(filter(None, [
            f"{clipped} propensities clipped to [{ctx['clip']}, {1 - ctx['clip']}]" if clipped else "",
            e.diagnostics.get("trimmed_estimand", ""), _models_note(e)]))
        rows.append(_effect_row("aipw", e, e.diagnostics["converged"], note))
    return rows


RUNNERS = {
    "fixed_effects": _fixed_effects,
    "entropy_balancing": _entropy_balancing,
    "cluster_balancing": _cluster_balancing,
    "dml": _dml,
    "aipw": _aipw,
    "kernel": _kernel,
    "dml_maml": lambda ctx: _dml(ctx, "dml_maml", 0.0),
    "dml_erm": lambda ctx: _dml(ctx, "dml_erm", 1.0),
}


def _fits_per_split(methods, propensity_level) -> int:
    """Nuisance fits per fold and split (for the progress bar): the method's
    own, shared by DML and AIPW (``_method_nuisances``), and MAML's and ERM's."""
    own = 0
    if "aipw" in methods:
        own = 2 + ("dml" in methods or propensity_level == "individual") + ("dml" in methods)
    elif "dml" in methods:
        own = 2
    return own + 2 * ("dml_maml" in methods) + 2 * ("dml_erm" in methods)


def _run(name, ctx, pending) -> list:
    """The rows of one method; a ValueError becomes a row of NaN with the
    reason in ``note``; functional-form warnings are noted and kept for later."""
    ed, level, warn_share = ctx["ed"], ctx["level"], ctx["warn_share"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = RUNNERS[name](ctx)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
            out = [_row(name, "", np.nan, np.nan, len(ed.y), ed.n_clusters, level,
                        converged=False, note=f"{type(err).__name__}: {err}")]
            if name == "fixed_effects":
                out[0]["se_type"] = ctx["vcov"]
    for w in caught:
        if issubclass(w.category, alerts.RFPWarning):   # a nuisance fit is not usable
            pending.append(warnings.WarningMessage(f"{name}: {w.message}", w.category,
                                                   w.filename, w.lineno))
            for r in out:
                if w.category.__name__ not in r["note"]:   # each kind once per row
                    r["note"] = "; ".join(filter(None, [r["note"], w.category.__name__]))
        if issubclass(w.category, FunctionalFormWarning):
            pending.append(w)
            for r in out:
                r["note"] = "; ".join(filter(None, [r["note"], "variance_share above "
                                                    f"{warn_share}: see the warning"]))
    return out


def compare(data, y=None, d=None, x=None, cluster=None, strata=None, methods=METHODS,
            truth=None, *, folds: int = 5, seed: int = 0, level: float = 0.95,
            repeats: int | None = None, clip: float = 0.01, icc: float | None = None,
            warn_share=WARN_SHARE,
            na_action: str = "fail", propensity: str = "auto",
            propensity_penalty=PROPENSITY_PENALTY, nuisance: str = "select", trim=None,
            vcov: str = "CR1", bootstrap_draws: int = 9999, bootstrap_weights: str = "rademacher",
            **settings) -> Comparison:
    """Every estimator in ``methods`` on the same rows, one table.

    Parameters
    ----------
    data : Arrow-compatible table or ``rfp.simulate.Simulation``
        A Simulation supplies y, d, x, cluster, strata and truth.
    y, d : str
        Outcome and treatment columns. With a non-binary treatment only the
        fixed_effects and dml rows run; the others say why in ``note``.
    x : list of str, str, or "all"
        Control columns. Required for a table (``x="all"``: every column
        other than y, d and cluster). Without controls (``x=[]``) only the
        fixed_effects row runs (a difference in means, within strata if given).
    cluster : str
        Cluster column (any type).
    strata : str, optional
        Fixed effects of the ``fixed_effects`` row.
    methods : str or sequence of str
        A subset of ``METHODS`` (module docstring).
    truth : dict, optional
        Estimand -> true value; adds columns truth and error = estimate − truth.
    folds, seed : int
        Cross-fitting folds (whole clusters) and the seed (folds, fits and
        the wild bootstrap).
    repeats : int or None
        Repeated cross-fitting: the median over that many fold splits
        (``effects``, "Repeated cross-fitting"); None: 5 below 100 clusters,
        else 1.
    level : float
        Confidence level.
    clip : float
        AIPW's propensity clipping to [clip, 1 − clip].
    icc : float, optional
        Cluster balancing's intraclass correlation; default: the one-way
        ANOVA estimate among the control clusters' outcomes.
    warn_share : float
        DML's variance share above which a FunctionalFormWarning is raised.
    na_action : {"fail", "omit"}
    propensity : {"auto", "cluster", "individual"}
        Where AIPW fits ê; ``propensity_penalty`` ("cv" or a float) is the
        ridge penalty of a cluster-level ê (``effects.estimators.aipw``).
    nuisance : {"select", "method", "linear", "constant"}
        The dml/aipw nuisance models (``effects.nuisance``: "select" chooses among
        constant, linear and the method by cross-validation across cluster
        folds; the rows' notes name the choice; dml_maml/dml_erm always use
        the method).
    trim : None, "crump" or float in (0, 0.5)
        Trims AIPW's rows by ê (Crump et al. 2009; ``effects.estimators.aipw``).
    vcov : {"CR1", "CR2", "wild"}
        Variance of the fixed-effects row (module docstring); the other rows
        are CR1. With "CR1" and fewer than 30 clusters a SmallClusterWarning.
    bootstrap_draws, bootstrap_weights : int, {"rademacher", "webb"}
        The wild bootstrap's draws and weights (``vcov="wild"``).
    **settings
        Fit settings of the method's nuisances as in ``rfp.fit`` (``dml``,
        ``aipw``; ``dml_maml`` / ``dml_erm`` override alpha). ``weights``:
        case (sampling) weights, a column name or one number >= 0 per row,
        used by the fixed_effects (weighted least squares, "CR1" only),
        entropy_balancing, dml, aipw, dml_maml and dml_erm rows (as in
        ``fixed_effects``, ``balance`` and ``rfp.effect``); the
        cluster_balancing and kernel rows take none and say so in ``note``.

    Returns
    -------
    Comparison
        The Arrow table (``.table``) with columns method, estimand,
        estimate, std_error, ci_low, ci_high, n, clusters, ess, converged,
        variance_share, imbalance, p_value, df, se_type, [truth, error,] note; a method
        that cannot run on these data (a ``ValueError``) gives a row of NaN
        with the reason in ``note``. ``summary()`` and ``to_pandas()`` give
        pandas.
    """
    checked = validate(dict(folds=folds, seed=seed, level=level, repeats=repeats, clip=clip,
                            icc=icc, warn_share=warn_share, na_action=na_action,
                            propensity=propensity, propensity_penalty=propensity_penalty,
                            vcov=vcov, bootstrap_draws=bootstrap_draws,
                            bootstrap_weights=bootstrap_weights, nuisance=nuisance, trim=trim,
                            **settings), "compare", data=data)
    folds, seed, level, repeats, clip = (checked.pop(k) for k in
                                         ("folds", "seed", "level", "repeats", "clip"))
    icc, warn_share, propensity_penalty = (checked.pop(k) for k in
                                           ("icc", "warn_share", "propensity_penalty"))
    vcov, bootstrap_draws, bootstrap_weights = (
        checked.pop(k) for k in ("vcov", "bootstrap_draws", "bootstrap_weights"))
    nuisance, trim = checked.pop("nuisance"), checked.pop("trim")
    checked.pop("na_action"), checked.pop("propensity")
    settings = checked
    if isinstance(data, Simulation):
        strata = data.settings.get("strata") if strata is None else strata
        truth = data.settings.get("truth") if truth is None else truth
    data, y, d, x, cluster = resolve(data, y, d, x, cluster)
    methods = [methods] if isinstance(methods, str) else list(methods)
    unknown = [m for m in methods if m not in RUNNERS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {list(RUNNERS)}")
    table = as_table(data)
    extra = [strata] if strata is not None else []
    crossfit = [m for m in methods if m in CROSS_FITTED]
    ed = read(table, y, d, x, cluster, na_action=na_action, allow_no_controls=True,
                 weights=settings.get("weights"))
    settings = with_case_weights(ed, settings)
    strata_codes = None
    if strata is not None:
        if strata not in table.column_names:
            raise ValueError(f"strata column '{strata}' not found; available: {table.column_names}")
        kept = table.filter(pa.array(ed.kept)) if not ed.kept.all() else table
        if kept.column(strata).null_count:
            raise ValueError(f"strata column '{strata}' has {kept.column(strata).null_count} "
                             f"missing value(s)")
        strata_codes = encode_clusters(kept.column(strata))[0]
    # the user's names, so that notes and balance tables name their columns
    reserved = {"y", "d", "cluster", "stratum", "w"}
    x_cols = [str(c) for c in ed.x_names]
    if len(set(x_cols)) != len(x_cols) or reserved & set(x_cols):
        x_cols = [f"x{j}" for j in range(ed.x.shape[1])]
    clean = pa.table({"y": ed.y, "d": ed.d, **{c: ed.x[:, j] for j, c in enumerate(x_cols)},
                      "cluster": ed.cluster, **({"stratum": strata_codes} if extra else {}),
                      **({"w": ed.w} if ed.w is not None else {})})
    if vcov == "CR1" and "fixed_effects" in methods:
        warn_small_clusters(ed.n_clusters)
    ctx = dict(ed=ed, table=clean, x_cols=x_cols, strata=strata_codes, level=level, seed=seed,
               vcov=vcov, bootstrap_draws=bootstrap_draws, bootstrap_weights=bootstrap_weights,
               clip=clip, icc=icc, warn_share=warn_share, treatment=d, settings=settings,
               binary=ed.binary,
               clustered=treatment_is_clustered(ed.d, ed.cluster), aipw="aipw" in methods and ed.binary and bool(x_cols),
               dml="dml" in methods, propensity_level=propensity_level(ed, propensity),
               propensity_penalty=propensity_penalty, nuisance=nuisance, trim=trim,
               folds=[cluster_folds(ed.cluster, folds, split_seed(seed, s), ed.d)
                      for s in range(default_repeats(ed.n_clusters) if repeats is None
                                     else check_repeats(repeats))] if crossfit else [])
    rows, pending = [], []
    total = _fits_per_split(methods, ctx["propensity_level"]) * int(folds) * len(ctx["folds"])
    with over_fits(settings, total) as fit_settings:
        ctx["settings"] = fit_settings
        for name in methods:
            rows.extend(_run(name, ctx, pending))
    for w in pending:
        warnings.warn(w.message, w.category, stacklevel=2)
    columns = {c: [r[c] for r in rows] for c in COLUMNS}
    if truth is not None:
        columns["truth"] = [float(truth.get(r["estimand"], np.nan)) for r in rows]
        columns["error"] = [r["estimate"] - t for r, t in zip(rows, columns["truth"])]
    columns["note"] = [r["note"] for r in rows]
    return Comparison(pa.table(columns), y, d, level)
