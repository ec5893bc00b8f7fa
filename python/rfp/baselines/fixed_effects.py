"""Fixed-effects regression, the first comparison (docs/DESIGN.md, "Comparisons").

OLS of the outcome on the treatment and controls with any number of fixed
effects absorbed by the within transformation (Frisch–Waugh–Lovell): one fixed
effect is swept out exactly by group means, two or more by alternating
projections (sweep each fixed effect's group means in turn) until the largest
change in a sweep is below ``tol`` relative to the column's scale. Standard
errors (``vcov``):

* "CR1" (default): by cluster (``inference.cluster_robust.cr1_vcov``) with K counted as
  in fixest's default ``ssc(fixef.K = "nested")``
  (``inference.cluster_robust.fixest_dof_k``); t with G - 1 degrees of freedom.
* "CR2": Bell-McCaffrey bias-reduced variance with the adjustment of the
  regression with the fixed effects as dummies (``inference.small_clusters.CR2``) and a
  t with Satterthwaite degrees of freedom per coefficient, as
  ``clubSandwich::coef_test(vcov = "CR2", test = "Satterthwaite")`` and
  ``estimatr::lm_robust(se_type = "CR2")``.
* "wild": the CR1 standard error, but p-values and intervals from the wild
  cluster bootstrap with the null imposed (``inference.wild_bootstrap``; interval
  by test inversion), seeded by ``seed``.

Case weights (``weights``, a column name or one number >= 0 per row) give
weighted least squares as ``feols(..., weights = ~w)``: the fixed effects are
swept out by weighted group means, β̂ = (X̃'WX̃)^{-1} X̃'Wỹ, and CR1's cluster
scores are Σ_{i∈g} w_i x̃_i e_i with n counting the rows of positive weight
(rows of weight 0 are dropped first, as fixest does). CR2 and the wild
bootstrap take no weights here (an error says so).

Numbers equal fixest / pyfixest ``feols(y ~ d + x | fe, vcov = ~cl)``. They
equal R's ``lm(y ~ d + x + factor(fe))`` + ``sandwich::vcovCL(type = "HC1")``
when no fixed effect is nested in the cluster; when one is, fixest drops its
levels from K and lm keeps them, so lm's SEs are larger by the factor
sqrt((n - K_fixest) / (n - K_lm)).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from rfp import data as rdata
from rfp import results
from rfp.inference.cluster_robust import cr1_vcov, fixest_dof_k
from rfp.inference.small_clusters import CR2
from rfp.inference.t_test import t_test
from rfp.inference.wild_bootstrap import wild_cluster_bootstrap
from rfp.settings import validate

INTERCEPT = "(Intercept)"
_COLLINEAR_TOL = 1e-9   # |x̃_j residual| / |x_j centred| below this: collinear


@dataclass
class FixedEffectsFit:
    """Coefficient table and the counts behind it.

    ``terms`` names the regressors (treatment first, then controls; with no
    fixed effects ``(Intercept)`` leads). ``K`` is the parameter count in the
    CR1 factor (n - 1)/(n - K). ``se_type`` is "CR1", "CR2" or "wild"; ``df``
    the t degrees of freedom, n_clusters - 1 (CR1, wild) or Satterthwaite's,
    one per term (CR2). ``bootstrap``: the wild bootstrap's draws, weights
    and seed (``se_type = "wild"``).
    """
    terms: list
    estimate: np.ndarray
    std_error: np.ndarray
    t: np.ndarray
    p: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    vcov: np.ndarray
    n: int
    n_clusters: int
    K: int
    df: int
    level: float
    outcome: str
    treatment: str
    fe: list = field(default_factory=list)
    cluster: str = ""
    n_dropped: int = 0
    iterations: int = 0
    converged: bool = True
    se_type: str = "CR1"
    bootstrap: dict = field(default_factory=dict)

    def tidy(self) -> pa.Table:
        """One row per regressor: term, estimate, std_error, t, p, ci_low, ci_high."""
        return pa.table({
            "term": pa.array(list(self.terms), pa.string()),
            "estimate": self.estimate,
            "std_error": self.std_error,
            "t": self.t,
            "p": self.p,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        })

    def summary(self):
        """Coefficient table (pandas, indexed by term): estimate, std_error,
        t, p_value, ci_low, ci_high, df, se_type."""
        pd = results.pandas()
        out = pd.DataFrame({"estimate": self.estimate, "std_error": self.std_error, "t": self.t,
                            "p_value": self.p, "ci_low": self.ci_low, "ci_high": self.ci_high,
                            "df": np.broadcast_to(np.asarray(self.df, float), len(self.terms)),
                            "se_type": self.se_type},
                           index=pd.Index(list(self.terms), name="term"))
        return out

    def to_pandas(self):
        """``summary()`` with the term as a column (one row per regressor)."""
        return self.summary().reset_index()

    def __repr__(self) -> str:
        rows = [{"term": t, "estimate": e, "std_error": s, "t": tt, "p_value": p, "ci_low": lo,
                 "ci_high": hi} for t, e, s, tt, p, lo, hi in
                zip(self.terms, self.estimate, self.std_error, self.t, self.p, self.ci_low,
                    self.ci_high)]
        if self.se_type == "CR2":
            how = "CR2 (Bell-McCaffrey), t with Satterthwaite df"
        elif self.se_type == "wild":
            b = self.bootstrap
            how = (f"CR1; p-values and intervals from the wild cluster bootstrap "
                   f"({b['weights']}, {b['draws']} draws, seed {b['seed']})")
        else:
            how = f"CR1, t on {self.df} df"
        fe = f", fixed effects: {', '.join(self.fe)}" if self.fe else ""
        return "\n".join([
            f"rfp fixed effects: {self.outcome} on {', '.join(self.terms)}{fe}",
            f"{self.n} observations in {self.n_clusters} clusters ({self.cluster}); standard "
            f"errors {how}; {self.level:.0%} intervals",
            results.text_table(rows, list(rows[0])),
        ])

    def row(self, term: str | None = None) -> dict:
        """The table row of ``term`` (the treatment by default) as a dict."""
        term = self.treatment if term is None else term
        if term not in self.terms:
            raise KeyError(f"no term {term!r}; terms are {self.terms}")
        j = self.terms.index(term)
        return {"term": term, "estimate": float(self.estimate[j]),
                "std_error": float(self.std_error[j]), "t": float(self.t[j]),
                "p": float(self.p[j]), "ci_low": float(self.ci_low[j]),
                "ci_high": float(self.ci_high[j]), "df": float(np.broadcast_to(self.df,
                                                                              len(self.terms))[j])}


def fixed_effects(data, y: str, treatment: str, controls=(), fe=(), *, cluster: str,
                  weights=None, na_action: str = "fail", level: float = 0.95, tol: float = 1e-14,
                  max_iter: int = 100_000, vcov: str = "CR1", bootstrap_draws: int = 9999,
                  bootstrap_weights: str = "rademacher", seed: int = 0) -> FixedEffectsFit:
    """OLS of ``y`` on ``treatment`` + ``controls`` absorbing the ``fe``
    columns, standard errors clustered by ``cluster``.

    Parameters
    ----------
    data : Arrow-compatible table (pyarrow, pandas, polars)
    y, treatment : str
        Outcome and treatment columns (numeric).
    controls : str or list of str
        Further numeric regressors.
    fe : str or list of str
        Fixed-effect columns (any type), absorbed.
    cluster : str
        Cluster column (any type).
    weights : str, array or None
        Case (sampling) weights: a column name or one number >= 0 per row;
        weighted least squares with fixest's weighted CR1 (module docstring).
        Rows of weight 0 are dropped. A missing, negative or infinite weight
        is an error naming its row. "CR1" only.
    na_action : {"fail", "omit"}
        "fail" rejects rows with missing values in any used column; "omit"
        drops them with a warning.
    level : float
        Confidence level of the intervals.
    tol, max_iter : float, int
        Convergence of the alternating projections (two or more ``fe``).
    vcov : {"CR1", "CR2", "wild"}
        Variance and inference (module docstring).
    bootstrap_draws, bootstrap_weights, seed
        The wild bootstrap's number of draws, weights ("rademacher" or
        "webb") and seed (``vcov = "wild"`` only).

    Returns
    -------
    FixedEffectsFit

    Raises ``ValueError`` naming the column for a missing or non-numeric
    column, missing values, a constant treatment, a regressor collinear with
    others or absorbed by the fixed effects, or fewer than two clusters.
    """
    checked = validate(dict(weights=weights, na_action=na_action, level=level, tol=tol,
                            max_iter=max_iter, vcov=vcov, bootstrap_draws=bootstrap_draws,
                            bootstrap_weights=bootstrap_weights, seed=seed), "fixed_effects",
                       data=data)
    weights = checked["weights"]
    level, tol, max_iter, vcov = (checked[k] for k in ("level", "tol", "max_iter", "vcov"))
    bootstrap_draws, bootstrap_weights, seed = (
        checked[k] for k in ("bootstrap_draws", "bootstrap_weights", "seed"))
    controls = [controls] if isinstance(controls, str) else list(controls)
    fe = [fe] if isinstance(fe, str) else list(fe)
    _check_roles(y, treatment, controls, fe)

    table = rdata.as_table(data)
    rdata.require_columns(table, list(dict.fromkeys([y, treatment, *controls, *fe, cluster])))
    roles = [(y, "outcome"), (treatment, "treatment"), *[(c, "control") for c in controls]]
    for name, role in roles:
        rdata.numeric(table, name, role)
    w_all = rdata.case_weights(table, weights)
    if w_all is not None and vcov != "CR1":
        raise NotImplementedError(
            f"vcov = {vcov!r} with case weights is not available: the CR2 adjustment and the "
            f"wild bootstrap here are for unweighted least squares; use vcov = 'CR1' (fixest's "
            f"weighted CR1)")
    table, kept = rdata.drop_missing(table, [y, treatment, *controls, *fe, cluster], na_action)
    n_dropped = int((~kept).sum())
    w = rdata.kept_weights(w_all, kept)
    if w is not None:                    # rows of weight 0 leave, as in fixest
        rdata.check_weighted_arms(rdata.numeric(table, treatment, "treatment"), w)
        rdata.check_weighted_clusters(*rdata.encode_clusters(table.column(cluster)), w,
                                      "cluster-robust inference")
        table = table.filter(pa.array(w > 0))
        w = rdata.normalise_weights(w[w > 0])   # scale-free: 1e-200 * w gives w's fit

    yv = rdata.numeric(table, y, "outcome")
    d = rdata.numeric(table, treatment, "treatment")
    if np.ptp(d) == 0:
        raise ValueError(
            f"treatment column '{treatment}' is constant (every row is {d[0]:g}): "
            f"there is no contrast to estimate"
        )
    cl_codes, cl_labels = rdata.encode_clusters(table.column(cluster))
    if len(cl_labels) < 2:
        raise ValueError(
            f"cluster column '{cluster}' has only {len(cl_labels)} cluster(s); "
            f"cluster-robust standard errors need at least two"
        )
    fe_codes = [rdata.encode_clusters(table.column(f))[0] for f in fe]

    terms = [treatment, *controls]
    x = np.column_stack([d, *[rdata.numeric(table, c, "control") for c in controls]])
    if not fe:
        terms = [INTERCEPT, *terms]
        x = np.column_stack([np.ones(len(yv)), x])
    if len(yv) <= x.shape[1]:
        raise ValueError(f"only {len(yv)} complete row(s) for {x.shape[1]} regressors")

    both, iterations, converged = demean(np.column_stack([yv, x]), fe_codes, tol, max_iter, w)
    if not converged:
        warnings.warn(
            f"rfp: demeaning by {fe} did not converge to tol={tol:g} in {max_iter} "
            f"sweeps; estimates may be inaccurate", stacklevel=2)
    y_tilde, x_tilde = both[:, 0], both[:, 1:]
    _check_collinear(x, x_tilde, terms, fe, has_intercept=not fe)

    root = np.ones(len(yv)) if w is None else np.sqrt(w)
    xw = x_tilde * root[:, None]         # weighted least squares as OLS on √w-scaled rows
    beta = np.linalg.solve(xw.T @ xw, xw.T @ (y_tilde * root))
    resid = y_tilde - x_tilde @ beta
    k = fixest_dof_k(x.shape[1], fe_codes, cl_codes) if fe else x.shape[1]
    n_clusters = len(cl_labels)
    df, bootstrap = n_clusters - 1, {}
    if vcov == "CR2":
        cr2 = CR2.fit(x_tilde, resid, cl_codes, fe_codes)
        v = cr2.vcov
        df = cr2.df_coefficients()
    else:
        v = cr1_vcov(xw, resid * root, cl_codes, k=k)
    se = np.sqrt(np.diag(v))
    test = t_test(beta, se, df=df, level=level)
    p, lo, hi = test.p, test.ci_low, test.ci_high
    if vcov == "wild":
        boots = [wild_cluster_bootstrap(x_tilde, y_tilde, cl_codes, j, fe_codes,
                                        draws=bootstrap_draws, weights=bootstrap_weights,
                                        seed=seed, level=level, k=k)
                 for j in range(len(terms))]
        p = np.array([b.p_value for b in boots])
        lo = np.array([b.ci_low for b in boots])
        hi = np.array([b.ci_high for b in boots])
        bootstrap = {"draws": boots[0].draws, "weights": bootstrap_weights, "seed": int(seed),
                     "full_enumeration": boots[0].full_enumeration}
    return FixedEffectsFit(
        terms=terms, estimate=beta, std_error=se, t=test.t, p=p,
        ci_low=lo, ci_high=hi, vcov=v, n=len(yv),
        n_clusters=n_clusters, K=k, df=df, level=level, outcome=y,
        treatment=treatment, fe=fe, cluster=cluster, n_dropped=n_dropped,
        iterations=iterations, converged=converged, se_type=vcov, bootstrap=bootstrap,
    )


def demean(m: np.ndarray, fe_codes, tol: float = 1e-14, max_iter: int = 100_000, w=None):
    """Within transformation of the columns of ``m`` (n, p) for the fixed
    effects given as integer code arrays (group means weighted by ``w``, all
    positive, when given). Returns (m̃, sweeps, converged).

    One fixed effect: subtract group means (exact, one sweep). Several:
    alternating projections, each sweep subtracting the group means of every
    fixed effect in turn, until max |change| ≤ tol · max(1, max |column|).
    """
    m = np.array(m, dtype=float, copy=True)
    if not fe_codes:
        return m, 0, True
    w = np.ones(m.shape[0]) if w is None else np.asarray(w, dtype=float)
    projectors = [_group_mean_operator(c, w) for c in fe_codes]
    if len(projectors) == 1:
        indicator, counts = projectors[0]
        return m - indicator @ ((indicator.T @ (w[:, None] * m)) / counts[:, None]), 1, True
    scale = np.maximum(1.0, np.abs(m).max(axis=0))
    for sweep in range(1, max_iter + 1):
        before = m.copy()
        for indicator, counts in projectors:
            m -= indicator @ ((indicator.T @ (w[:, None] * m)) / counts[:, None])
        change = (np.abs(m - before).max(axis=0) / scale).max()
        if change <= tol:
            return m, sweep, True
    return m, max_iter, False


def _group_mean_operator(codes: np.ndarray, w: np.ndarray):
    codes = np.asarray(codes)
    n = codes.shape[0]
    n_groups = int(codes.max()) + 1
    indicator = sp.csr_matrix((np.ones(n), (np.arange(n), codes)), shape=(n, n_groups))
    counts = np.bincount(codes, weights=w, minlength=n_groups).astype(float)
    return indicator, counts


def _check_roles(y, treatment, controls, fe):
    """``data.check_roles`` for the outcome, treatment and controls, then
    the fixed effects' own: no control twice, no fixed effect that is also a
    regressor or the outcome."""
    rdata.check_roles(y, controls, d=treatment)
    dup = {c for c in controls if controls.count(c) > 1}
    if dup:
        raise ValueError(f"control column(s) {sorted(dup)} listed more than once")
    for f in fe:
        if f in (y, treatment, *controls):
            raise ValueError(f"column '{f}' is both a fixed effect and a regressor/outcome")


def _check_collinear(x, x_tilde, terms, fe, has_intercept):
    """Name the first regressor that is (numerically) a combination of the
    fixed effects and the regressors before it."""
    kept = []
    for j, name in enumerate(terms):
        raw = x[:, j] if (has_intercept and j == 0) else x[:, j] - x[:, j].mean()
        scale = np.linalg.norm(raw)
        role = "treatment" if j == (1 if has_intercept else 0) else "control"
        if scale == 0:
            raise ValueError(f"{role} column '{name}' is constant: it is collinear with the "
                             f"{'intercept' if has_intercept else 'fixed effects'}")
        col = x_tilde[:, j]
        if np.linalg.norm(col) <= _COLLINEAR_TOL * scale:
            raise ValueError(
                f"{role} column '{name}' does not vary within the fixed effects {fe}: "
                f"it is absorbed by them (collinear), so its coefficient is not identified")
        if kept:
            basis = x_tilde[:, kept]
            coef, *_ = np.linalg.lstsq(basis, col, rcond=None)
            resid = col - basis @ coef
            if np.linalg.norm(resid) <= _COLLINEAR_TOL * scale:
                weight = np.abs(coef) * np.linalg.norm(basis, axis=0) / np.linalg.norm(col)
                partners = [terms[i] for i, w in zip(kept, weight) if w > 1e-6]
                extra = " and the fixed effects" if fe else ""
                raise ValueError(
                    f"{role} column '{name}' is collinear with {partners}{extra}: "
                    f"drop one of them")
        kept.append(j)
