"""Balancing weights against independent solutions.

* entropy balancing: empirical_calibration (PyPI) and the primal solved here
  by SLSQP; exponential-tilting form; infeasibility checked by an LP.
* hierarchical and cluster balancing: the same QPs written from their
  definitions in R and solved by quadprog::solve.QP (in-process rpy2; that R
  code never calls back into Python).
* diagnostics: SMD and ESS against hand arithmetic.
"""
import warnings

import numpy as np
import pyarrow as pa
import pytest
from scipy.optimize import linprog, minimize

from rfp.baselines.balancing.cluster import cluster_balance
from rfp.baselines.balancing.tables import (cluster_balance_from_table,
    entropy_balance_from_table, hierarchical_balance_from_table)
from rfp.baselines.balancing.entropy import entropy_balance
from rfp.baselines.balancing.hierarchical import hierarchical_balance
from rfp.diagnostics import balance_table, effective_sample_size, weight_summary


# ----------------------------------------------------------------------------- data

def _observational(seed, n0=200, n1=60, p=3, shift=0.4):
    rng = np.random.default_rng(seed)
    xc = rng.normal(size=(n0, p))
    xt = rng.normal(size=(n1, p)) * 0.8 + shift
    return xc, xt


def _hull_feasible(xc, m):
    """LP: is there w ≥ 0, Σ w = 1, Σ w x = m ?"""
    n0 = xc.shape[0]
    A = np.vstack([np.ones(n0), xc.T])
    res = linprog(np.zeros(n0), A_eq=A, b_eq=np.r_[1.0, m], bounds=[(0, None)] * n0,
                  method="highs")
    return res.status == 0


# ----------------------------------------------------------------------------- entropy

def test_entropy_matches_empirical_calibration():
    ec = pytest.importorskip("empirical_calibration")
    xc, xt = _observational(0)
    m = xt.mean(axis=0)
    res = entropy_balance(xc, m)
    assert res.converged and res.status == "converged"
    ref, ok = ec.calibrate(xc, xt, objective=ec.Objective.ENTROPY)
    assert ok
    assert np.max(np.abs(res.weights - ref)) < 1e-6
    assert abs(res.weights.sum() - 1) < 1e-12
    assert np.max(np.abs(res.weights @ xc - m)) < 1e-8
    assert res.max_violation < 1e-8

    # with base weights
    q = np.random.default_rng(1).uniform(0.2, 3.0, size=xc.shape[0])
    res_q = entropy_balance(xc, m, base_weights=q)
    ref_q, ok = ec.calibrate(xc, xt, baseline_weights=q / q.sum(), objective=ec.Objective.ENTROPY)
    assert ok and res_q.converged
    assert np.max(np.abs(res_q.weights - ref_q)) < 1e-6
    assert np.max(np.abs(res_q.weights @ xc - m)) < 1e-8


def test_entropy_matches_primal_and_is_exponential_tilting():
    rng = np.random.default_rng(3)
    n0 = 30
    xc = rng.normal(size=(n0, 2))
    m = np.array([0.3, -0.2])
    q = rng.uniform(0.5, 2.0, n0)
    q = q / q.sum()
    cons = [{"type": "eq", "fun": lambda w: np.r_[w.sum() - 1, xc.T @ w - m],
             "jac": lambda w: np.vstack([np.ones(n0), xc.T])}]
    primal = minimize(lambda w: np.sum(w * np.log(w / q)), q.copy(),
                      jac=lambda w: np.log(w / q) + 1, constraints=cons,
                      bounds=[(1e-12, 1)] * n0, method="SLSQP",
                      options={"ftol": 1e-15, "maxiter": 1000})
    assert primal.success
    res = entropy_balance(xc, m, base_weights=q)
    assert res.converged
    assert np.max(np.abs(res.weights - primal.x)) < 1e-6
    # log(w/q) is affine in x (exponential tilting), with slope = the dual coefficients
    design = np.column_stack([np.ones(n0), xc])
    fit, *_ = np.linalg.lstsq(design, np.log(res.weights / q), rcond=None)
    assert np.max(np.abs(design @ fit - np.log(res.weights / q))) < 1e-8
    assert np.allclose(fit[1:], res.coef, atol=1e-8)


def test_entropy_infeasible_is_reported():
    xc, xt = _observational(5, n0=100)
    m = xt.mean(axis=0).copy()
    m[1] = xc[:, 1].max() + 1.0          # above every control in x2
    assert not _hull_feasible(xc, m)
    res = entropy_balance(xc, m, names=["age", "income", "score"], fallback="none")
    assert not res.converged and res.status == "infeasible"
    assert res.worst_covariate == "income"
    assert "infeasible" in res.message and "income" in res.message
    assert res.imbalance[1] < -0.99       # at least the gap to the largest control

    # outside the hull while inside every univariate range: only a joint check sees it
    ang = np.random.default_rng(2).uniform(0, 2 * np.pi, 80)
    disk = np.column_stack([np.cos(ang), np.sin(ang)])
    m2 = np.array([0.8, 0.8])
    assert not _hull_feasible(disk, m2)
    assert np.all(m2 < disk.max(axis=0))
    res2 = entropy_balance(disk, m2, fallback="none")
    assert res2.status == "infeasible" and not res2.converged
    assert res2.worst_covariate in ("x1", "x2")
    # nearest hull point of the unit circle to (0.8, 0.8) is ~(0.707, 0.707)
    assert np.all(res2.imbalance < -0.05)

    # a feasible target inside the disk converges
    assert _hull_feasible(disk, np.array([0.3, 0.2]))
    assert entropy_balance(disk, np.array([0.3, 0.2])).converged


# ----------------------------------------------------------------------------- R / quadprog

R_CODE = r"""
hier_qp <- function(X, treated, cluster, lam) {
  # min 1/2 sum w^2 + 1/(2 lam) sum_c ||T_c - X_c' w_c||^2   (X standardized by sd)
  # s.t. sum_{c} w = n1c, global balance, w >= 0; lam = 0: within-cluster balance exact
  Xs <- sweep(X, 2, apply(X, 2, sd), "/")
  tcl <- unique(cluster[treated == 1])
  ctrl <- which(treated == 0 & cluster %in% tcl)
  n0 <- length(ctrl)
  Dmat <- diag(n0); dvec <- rep(0, n0)
  Aeq <- NULL; beq <- NULL
  for (cc in tcl) {
    i <- which(cluster[ctrl] == cc)
    Xi <- Xs[ctrl[i], , drop = FALSE]
    Tc <- colSums(Xs[treated == 1 & cluster == cc, , drop = FALSE])
    if (is.finite(lam) && lam > 0) {
      Dmat[i, i] <- Dmat[i, i] + Xi %*% t(Xi) / lam
      dvec[i] <- dvec[i] + as.vector(Xi %*% Tc) / lam
    }
    a <- numeric(n0); a[i] <- 1
    Aeq <- cbind(Aeq, a); beq <- c(beq, sum(treated == 1 & cluster == cc))
    if (lam == 0) for (k in seq_len(ncol(X))) {
      a <- numeric(n0); a[i] <- Xi[, k]
      Aeq <- cbind(Aeq, a); beq <- c(beq, Tc[k])
    }
  }
  if (lam > 0) {
    Aeq <- cbind(Aeq, Xs[ctrl, , drop = FALSE])
    beq <- c(beq, colSums(Xs[treated == 1, , drop = FALSE]))
  }
  sol <- quadprog::solve.QP(Dmat, dvec, cbind(Aeq, diag(n0)), c(beq, rep(0, n0)),
                            meq = ncol(Aeq))
  w <- numeric(length(treated)); w[treated == 1] <- 1; w[ctrl] <- sol$solution
  w
}
clus_qp <- function(Xc, treated, size, icc, tol) {
  # min 1/2 sum v_c w_c^2, v_c = icc + (1 - icc)/n_c, over control clusters
  # s.t. sum w = 1, |sum w x - target| <= tol, w >= 0; target = treated individual means
  target <- colSums(Xc[treated == 1, , drop = FALSE] * size[treated == 1]) / sum(size[treated == 1])
  Z <- Xc[treated == 0, , drop = FALSE]
  g0 <- nrow(Z)
  v <- icc + (1 - icc) / size[treated == 0]
  if (tol == 0) {
    A <- cbind(1, Z, diag(g0)); b <- c(1, target, rep(0, g0)); meq <- 1 + ncol(Z)
  } else {
    A <- cbind(1, Z, -Z, diag(g0)); b <- c(1, target - tol, -(target + tol), rep(0, g0)); meq <- 1
  }
  quadprog::solve.QP(diag(v, g0), rep(0, g0), A, b, meq = meq)$solution
}
"""


@pytest.fixture(scope="module")
def R():
    pytest.importorskip("rpy2")
    import rpy2.robjects as ro
    try:
        ro.r("suppressPackageStartupMessages(library(quadprog))")
    except Exception as exc:  # pragma: no cover - environment without quadprog
        pytest.skip(f"R package quadprog unavailable: {exc}")
    ro.r(R_CODE)
    return ro


def _rmat(ro, x):
    x = np.asarray(x, dtype=float)
    return ro.r.matrix(ro.FloatVector(x.ravel(order="F")), nrow=x.shape[0], ncol=x.shape[1])


def _multilevel(seed=11, G=4, n_ctrl=12, n_trt=4, p=2):
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(G):
        mu = rng.normal(scale=0.7, size=p)
        spread = np.linspace(1.0, 3.0, p)          # unequal scales: standardizing matters
        xc = mu + rng.normal(size=(n_ctrl, p)) * spread
        xt = mu + 0.3 + 0.5 * rng.normal(size=(n_trt, p)) * spread
        rows += [(g, 0, r) for r in xc] + [(g, 1, r) for r in xt]
    order = rng.permutation(len(rows))
    cluster = np.array([rows[i][0] for i in order])
    treated = np.array([rows[i][1] for i in order])
    X = np.array([rows[i][2] for i in order])
    return X, treated, cluster


def test_hierarchical_matches_quadprog(R):
    X, treated, cluster = _multilevel()
    labels = np.array(["school_" + str(c) for c in cluster])
    within = {}
    for lam in [0.0, 0.1, 1.0, 10.0, 100.0, np.inf]:
        res = hierarchical_balance(X, treated, labels, lam)
        assert res.solved, (lam, res.status)
        ref = np.array(R.r["hier_qp"](_rmat(R, X), R.IntVector(treated), R.IntVector(cluster),
                                      float(lam)))
        assert np.max(np.abs(res.weights - ref)) < 1e-5, lam
        # the constraints: exact global balance, per-cluster sums, nonnegativity
        w = res.weights
        assert np.max(np.abs(X[treated == 1].sum(0) - (w * (1 - treated)) @ X)) < 1e-8
        for c in np.unique(cluster):
            inc = cluster == c
            assert abs(w[inc & (treated == 0)].sum() - (inc & (treated == 1)).sum()) < 1e-8
        assert np.all(w >= 0)
        assert np.max(np.abs(res.global_imbalance)) < 1e-8
        within[lam] = np.sum((res.cluster_imbalance / X.std(0, ddof=1)) ** 2
                             * np.bincount(cluster, weights=treated)[:, None] ** 2)
    # lam = 0 balances every cluster exactly; within-cluster imbalance grows with lam
    assert within[0.0] < 1e-14
    lams = [0.0, 0.1, 1.0, 10.0, 100.0, np.inf]
    assert all(within[a] <= within[b] + 1e-9 for a, b in zip(lams, lams[1:]))
    assert within[np.inf] > 100 * within[0.1]


def test_hierarchical_limits():
    X, treated, cluster = _multilevel(seed=4)
    inf = hierarchical_balance(X, treated, cluster, np.inf).weights
    big = hierarchical_balance(X, treated, cluster, 1e7).weights
    zero = hierarchical_balance(X, treated, cluster, 0.0).weights
    small = hierarchical_balance(X, treated, cluster, 1e-6).weights
    assert np.max(np.abs(inf - big)) < 1e-4
    assert np.max(np.abs(zero - small)) < 1e-4
    assert np.max(np.abs(inf - zero)) > 1e-2


def test_cluster_balance_matches_quadprog(R):
    rng = np.random.default_rng(8)
    G = 40
    size = rng.integers(3, 60, size=G).astype(float)
    xbar = rng.normal(size=(G, 3))
    tc = (rng.random(G) < 0.35 + 0.2 * (xbar[:, 0] > 0)).astype(int)
    for icc, tol in [(0.0, 0.0), (0.2, 0.0), (1.0, 0.0), (0.1, 0.05)]:
        res = cluster_balance(xbar, tc, size, icc, tol=tol)
        assert res.solved, res.status
        ref = np.array(R.r["clus_qp"](_rmat(R, xbar), R.IntVector(tc), R.FloatVector(size),
                                      icc, tol))
        wc = res.weights[tc == 0]
        assert np.max(np.abs(wc - ref)) < 1e-5, (icc, tol)
        target = size[tc == 1] @ xbar[tc == 1] / size[tc == 1].sum()
        assert abs(wc.sum() - 1) < 1e-9 and np.all(wc >= 0)
        assert np.max(np.abs(wc @ xbar[tc == 0] - target)) < tol + 1e-8
        v = icc + (1 - icc) / size[tc == 0]
        assert abs(res.variance_factor - np.sum(v * wc ** 2)) < 1e-12


def test_cluster_balance_without_covariates_is_precision_weighting():
    size = np.array([2.0, 5.0, 10.0, 40.0, 7.0, 3.0])
    tc = np.array([1, 0, 0, 0, 1, 0])
    for icc in (0.0, 0.25, 1.0):
        res = cluster_balance(np.zeros((6, 0)), tc, size, icc)
        prec = 1.0 / (icc + (1 - icc) / size[tc == 0])
        assert np.max(np.abs(res.weights[tc == 0] - prec / prec.sum())) < 1e-7
    # icc = 0: individuals count (w ∝ n_c); icc = 1: clusters count (uniform)
    assert np.allclose(cluster_balance(np.zeros((6, 0)), tc, size, 0.0).weights[tc == 0],
                       np.array([5, 10, 40, 3]) / 58, atol=1e-7)
    assert np.allclose(cluster_balance(np.zeros((6, 0)), tc, size, 1.0).weights[tc == 0],
                       0.25, atol=1e-7)


def test_cluster_table_wrapper_aggregates_and_balances():
    rng = np.random.default_rng(21)
    G = 30
    sizes = rng.integers(4, 20, size=G)
    cl = np.repeat(np.arange(G), sizes)
    v = rng.normal(size=G)
    d_cl = (rng.random(G) < 0.4 + 0.2 * (v > 0)).astype(int)
    x = rng.normal(size=cl.size) + 0.3 * v[cl]
    data = {"school": np.array([f"s{c:02d}" for c in cl]), "d": d_cl[cl], "x": x, "v": v[cl]}
    fit = cluster_balance_from_table(data, "d", ["x"], "school", icc=0.15, cluster_x=["v"])
    assert fit.result.solved
    # same as the array function on hand-aggregated cluster means
    xbar = np.column_stack([np.bincount(cl, weights=x) / sizes, v])
    ref = cluster_balance(xbar, d_cl, sizes, 0.15)
    assert np.max(np.abs(fit.result.weights - ref.weights)) < 1e-8
    # per-row weights reproduce the balance at the individual level
    smd = fit.balance.column("smd_after").to_numpy()
    assert np.max(np.abs(smd)) < 1e-7
    assert abs(fit.weights[data["d"] == 0].sum() - (data["d"] == 1).sum()) < 1e-8


def test_table_wrappers_equal_array_functions():
    X, treated, cluster = _multilevel(seed=2)
    data = pa.table({"g": cluster, "d": treated.astype(bool), "a": X[:, 0], "b": X[:, 1]})
    fit = hierarchical_balance_from_table(data, "d", ["a", "b"], "g", lam=1.0)
    ref = hierarchical_balance(X, treated, cluster, 1.0)
    assert np.max(np.abs(fit.weights - ref.weights)) < 1e-10
    efit = entropy_balance_from_table(data, "d", ["a", "b"])
    eref = entropy_balance(X[treated == 0], X[treated == 1].mean(0))
    assert efit.result.converged
    n1 = treated.sum()
    assert np.max(np.abs(efit.weights[treated == 0] - n1 * eref.weights)) < 1e-10
    assert np.all(efit.weights[treated == 1] == 1)
    assert np.max(np.abs(efit.balance.column("smd_after").to_numpy())) < 1e-8
    assert abs(efit.ess - effective_sample_size(eref.weights)) < 1e-8


# ----------------------------------------------------------------------------- diagnostics

def test_balance_table_and_ess_by_hand():
    X = np.array([[1.0], [2.0], [3.0], [4.0], [6.0]])
    t = np.array([1, 1, 0, 0, 0])
    w = np.array([1.0, 1.0, 1.0, 2.0, 1.0])
    tab = balance_table(X, t, w, names=["z"]).to_pydict()
    sd_t = np.sqrt(0.5)                       # treated 1, 2: variance ((.5)^2 + (.5)^2) / 1
    assert tab["covariate"] == ["z"]
    assert tab["treated_mean"][0] == pytest.approx(1.5, abs=1e-14)
    assert tab["control_mean"][0] == pytest.approx(13 / 3, abs=1e-14)
    assert tab["control_mean_weighted"][0] == pytest.approx(17 / 4, abs=1e-14)
    assert tab["sd"][0] == pytest.approx(sd_t, abs=1e-14)
    assert tab["smd_before"][0] == pytest.approx((1.5 - 13 / 3) / sd_t, abs=1e-12)
    assert tab["smd_after"][0] == pytest.approx((1.5 - 17 / 4) / sd_t, abs=1e-12)
    pooled = balance_table(X, t, w, sd="pooled").to_pydict()
    sd_p = np.sqrt((0.5 + 7 / 3) / 2)         # control 3, 4, 6: variance 42/9/2 = 7/3
    assert pooled["smd_after"][0] == pytest.approx((1.5 - 17 / 4) / sd_p, abs=1e-12)
    assert effective_sample_size([1.0, 2.0, 1.0]) == pytest.approx(16 / 6, abs=1e-14)
    assert effective_sample_size(np.full(7, 0.3)) == pytest.approx(7.0, abs=1e-12)
    summ = weight_summary(w, t)
    assert summ["n_control"] == 3 and summ["ess_control"] == pytest.approx(16 / 6)
    assert summ["max_control_weight_share"] == pytest.approx(0.5)


# ----------------------------------------------------------------------------- bad input

def _frame():
    rng = np.random.default_rng(0)
    n = 24
    return {
        "g": np.repeat(["a", "b", "c", "d"], 6),
        "d": np.tile([0, 0, 0, 1, 1, 0], 4),
        "x": rng.normal(size=n),
        "w": rng.normal(size=n),
    }


def test_bad_columns_are_named():
    df = _frame()
    with pytest.raises(ValueError, match="nope"):
        entropy_balance_from_table(df, "d", ["x", "nope"])
    bad = dict(df, s=np.array(["u"] * 24, dtype=object))
    with pytest.raises(ValueError, match="'s'.*numeric"):
        entropy_balance_from_table(bad, "d", ["x", "s"])
    nulls = dict(df, x=np.where(np.arange(24) % 7 == 0, np.nan, df["x"]))
    with pytest.raises(ValueError, match="column 'x' has 4 missing"):
        entropy_balance_from_table(nulls, "d", ["x", "w"])
    with pytest.warns(UserWarning, match="dropped 4 row"):
        fit = hierarchical_balance_from_table(nulls, "d", ["x", "w"], "g", lam=1.0,
                                              na_action="omit")
    assert fit.kept.sum() == 20 and fit.weights.size == 20


def test_bad_treatment_is_named():
    df = _frame()
    three = dict(df, d=np.tile([0, 1, 2], 8))
    with pytest.raises(ValueError, match=r"'d'.*binary.*\[0, 1, 2\]"):
        entropy_balance_from_table(three, "d", ["x"])
    words = dict(df, d=np.array(["yes", "no"] * 12, dtype=object))
    with pytest.raises(ValueError, match=r"'d'.*binary.*'no', 'yes'"):
        entropy_balance_from_table(words, "d", ["x"])
    const = dict(df, d=np.ones(24, dtype=int))
    with pytest.raises(ValueError, match="'d' is constant"):
        hierarchical_balance_from_table(const, "d", ["x"], "g", lam=1.0)


def test_cluster_design_errors_name_the_cluster():
    df = _frame()
    with pytest.raises(ValueError, match="'d' varies within cluster 'a'"):
        cluster_balance_from_table(df, "d", ["x"], "g", icc=0.1)
    whole = dict(df, d=np.repeat([0, 1, 0, 1], 6))
    with pytest.raises(ValueError, match="'w' varies within cluster 'a'"):
        cluster_balance_from_table(whole, "d", ["x"], "g", icc=0.1, cluster_x=["w"])
    # whole-cluster treatment cannot be balanced within clusters
    with pytest.raises(ValueError, match="cluster 'b'.*no\\s+controls"):
        hierarchical_balance_from_table(whole, "d", ["x"], "g", lam=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = cluster_balance_from_table(whole, "d", ["x"], "g", icc=0.1, tol=10.0)
    assert fit.result.solved


def test_qp_infeasible_is_reported_not_raised():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    treated = np.r_[np.ones(10), np.zeros(50)].astype(int)
    X[:10, 0] += 10                       # treated far beyond every control in x1
    cluster = np.tile([0, 1, 2], 20)
    assert not _hull_feasible(X[treated == 0], X[treated == 1].mean(0))
    res = hierarchical_balance(X, treated, cluster, 1.0, names=["dose", "age"])
    assert not res.solved and "infeasible" in res.status
    assert np.all(np.isnan(res.weights[treated == 0])) and "dose" in res.message
    fit = hierarchical_balance_from_table(
        {"d": treated, "dose": X[:, 0], "age": X[:, 1], "g": cluster}, "d", ["dose", "age"], "g", 1.0)
    assert np.all(np.isnan(fit.balance.column("smd_after").to_numpy()))
    xc = rng.normal(size=(20, 2))
    xc[:5] += 5
    cres = cluster_balance(xc, np.r_[np.ones(5), np.zeros(15)], np.full(20, 10.0), 0.1,
                           fallback="none")
    assert not cres.solved and "infeasible" in cres.status and "x1" in cres.message
    assert cres.balance == "none" and np.all(np.isnan(cres.weights[5:]))


# ----------------------------------------------------------------------------- approximate balance

def _closest_hull_point(z):
    """The point of the convex hull of the rows of z nearest the origin, by
    SLSQP on the simplex (independent of the OSQP solution)."""
    n = z.shape[0]
    res = minimize(lambda w: 0.5 * np.sum((z.T @ w) ** 2), np.full(n, 1 / n),
                   jac=lambda w: z @ (z.T @ w), bounds=[(0, None)] * n,
                   constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
                   method="SLSQP", options={"ftol": 1e-14, "maxiter": 2000})
    return z.T @ res.x


def test_entropy_falls_back_to_penalised_balance_and_reports_it():
    xc, xt = _observational(5, n0=60)
    m = xt.mean(axis=0).copy()
    m[1] = xc[:, 1].max() + 0.3           # beyond every control in x2: exact balance infeasible
    assert not _hull_feasible(xc, m)
    res = entropy_balance(xc, m, names=["age", "income", "score"])
    assert res.status == "approximate" and res.balance == "approximate"
    assert not res.converged and res.exact_status == "infeasible" and res.penalty > 0
    assert "approximate balance" in res.message and "income" in res.message
    assert res.weights.min() >= 0 and abs(res.weights.sum() - 1) < 1e-12
    sd = xc.std(axis=0)
    z = (xc - m) / sd
    # the reported imbalance is the weights' imbalance, per covariate
    assert np.allclose(res.imbalance, res.weights @ xc - m, atol=1e-12)
    assert np.allclose(res.std_imbalance, res.imbalance / sd, atol=1e-12)
    # the smallest attainable imbalance agrees with an independent SLSQP
    ref = _closest_hull_point(z)
    assert np.linalg.norm(res.closest_imbalance) == pytest.approx(np.linalg.norm(ref), abs=1e-5)
    # the weights solve the penalised primal min KL(w || 1/n) + ||z'w||^2 / (2 lam)
    lam, n = res.penalty, len(xc)

    def primal(w):
        w = np.maximum(w, 1e-300)
        return np.sum(w * np.log(w * n)) + np.sum((z.T @ w) ** 2) / (2 * lam)

    ref_w = minimize(primal, np.full(n, 1 / n),
                     jac=lambda w: np.log(np.maximum(w, 1e-300) * n) + 1 + z @ (z.T @ w) / lam,
                     bounds=[(1e-12, None)] * n,
                     constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
                     method="SLSQP", options={"ftol": 1e-15, "maxiter": 5000}).x
    assert primal(res.weights) <= primal(ref_w) + 1e-7
    assert np.max(np.abs(res.weights - ref_w)) < 1e-4
    # the rule: within slack (0.05 SD) of the best attainable imbalance, at the largest penalty
    assert np.linalg.norm(res.std_imbalance) <= np.linalg.norm(ref) + 0.05 + 1e-6
    # with an unbounded slack the largest penalty (1) is kept: the ladder goes downwards
    assert entropy_balance(xc, m, slack=1e9).penalty == 1.0


def test_cluster_balance_falls_back_to_tolerance_and_reports_it():
    rng = np.random.default_rng(3)
    xc = rng.normal(size=(20, 2))
    xc[:5, 0] += 2.5                      # treated clusters beyond the controls in x1
    treated = np.r_[np.ones(5), np.zeros(15)]
    nc = rng.integers(5, 30, size=20).astype(float)
    res = cluster_balance(xc, treated, nc, 0.2, names=["dose", "age"])
    assert res.solved and res.balance == "approximate" and "infeasible" in res.exact_status
    assert "dose" in res.message and "approximate" in res.message
    w = res.weights[5:]
    assert w.min() >= 0 and abs(w.sum() - 1) < 1e-8
    sd = xc.std(axis=0, ddof=1)
    target = nc[:5] @ xc[:5] / nc[:5].sum()
    ref = _closest_hull_point((xc[5:] - target) / sd)
    assert np.allclose(np.abs(res.closest_imbalance), np.abs(ref), atol=1e-4)
    assert np.allclose(res.tol, sd * (np.abs(res.closest_imbalance) + 0.05))
    assert np.all(np.abs(res.imbalance) <= res.tol + 1e-7)
    # the same QP by SLSQP: min 1/2 sum v w^2, simplex, |sum w x - target| <= tol
    v = 0.2 + 0.8 / nc[5:]
    cons = [{"type": "eq", "fun": lambda u: u.sum() - 1}]
    for k in range(2):
        cons.append({"type": "ineq", "fun": lambda u, k=k: res.tol[k] - (u @ xc[5:, k] - target[k])})
        cons.append({"type": "ineq", "fun": lambda u, k=k: res.tol[k] + (u @ xc[5:, k] - target[k])})
    ref_w = minimize(lambda u: 0.5 * np.sum(v * u * u), np.full(15, 1 / 15),
                     jac=lambda u: v * u, bounds=[(0, None)] * 15, constraints=cons,
                     method="SLSQP", options={"ftol": 1e-15, "maxiter": 2000}).x
    assert np.max(np.abs(w - ref_w)) < 1e-5
    # a feasible problem is solved exactly, as before
    ok = cluster_balance(xc[5:], np.r_[np.ones(5), np.zeros(10)], nc[5:], 0.2)
    assert ok.solved and ok.balance == "exact" and np.max(np.abs(ok.imbalance)) < 1e-6


def test_balancing_answers_in_every_low_overlap_sample():
    """The validation design where exact balance failed most (low overlap):
    both balancing methods return weights in every sample, exact or
    approximate, with the achieved imbalance reported."""
    from rfp.compare import compare
    from rfp.simulate import cluster_trial
    approx = 0
    for seed in range(20000, 20006):
        sim = cluster_trial(4, 10, 15, overlap="low", seed=seed)
        tab = compare(sim, methods=["entropy_balancing", "cluster_balancing"]).to_pylist()
        for row in tab:
            assert np.isfinite(row["estimate"]) and np.isfinite(row["std_error"]), row
            assert row["converged"] and np.isfinite(row["imbalance"])
            approx += "approximate" in row["note"]
    assert approx >= 2                    # the design does produce infeasible samples
