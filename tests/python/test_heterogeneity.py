"""Heterogeneity from cross-fitted AIPW scores (rfp.heterogeneity): the BLP
and GATES against statsmodels' cluster-robust OLS on the same scores, and
coverage on a design with known heterogeneity and on one without."""
import warnings

import numpy as np
import pytest

import rfp

from montecarlo import assert_covers

sm = pytest.importorskip("statsmodels.api")
FAST = dict(nuisance="linear", repeats=1, propensity_penalty=1.0)


def _trial(seed, kappa=0.5, g=40, n=15, complete=False):
    """Whole clusters randomized with probability 1/2 each (``complete``: exactly
    half); τ(x) = 1 + κ x1, outcome nonlinear in x1."""
    rng = np.random.default_rng(seed)
    if complete:
        dc = np.zeros(g)
        dc[rng.permutation(g)[: g // 2]] = 1
    else:
        dc = (rng.random(g) < 0.5).astype(float)
        while not 4 <= dc.sum() <= g - 4:
            dc = (rng.random(g) < 0.5).astype(float)
    cl = np.repeat(np.arange(g), n)
    u = rng.normal(size=g)
    x1 = rng.normal(size=g * n) + 0.5 * u[cl]
    x2 = rng.normal(size=g * n)
    y = (np.sin(x1) + 0.5 * x2 + 0.5 * u[cl] + dc[cl] * (1 + kappa * x1)
         + rng.normal(size=g * n))
    return {"y": y, "d": dc[cl], "x1": x1, "x2": x2, "g": cl}


def _fit(data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rfp.heterogeneity(data, "y", "d", ["x1", "x2"], "g", **{**FAST, **kw})


def test_blp_and_gates_equal_statsmodels_cluster_ols_on_the_scores():
    data = _trial(0)
    h = _fit(data, covariates=["x1", "x2"], groups=4)
    phi = h.effect.nuisance["phi"]
    a = np.column_stack([data["x1"], data["x2"]])
    z = sm.add_constant(a - a.mean(axis=0))
    ref = sm.OLS(phi, z).fit(cov_type="cluster", cov_kwds={"groups": data["g"]})
    blp = h.blp.to_pydict()
    assert blp["term"] == ["(Intercept)", "x1", "x2"]
    assert np.allclose(blp["estimate"], ref.params, atol=1e-12)
    assert np.allclose(blp["std_error"], ref.bse, atol=1e-12)
    assert blp["estimate"][0] == pytest.approx(h.effect.estimate, abs=1e-12)   # intercept = ATE
    # GATES: group means of the scores, groups = quartiles of the out-of-fold tau-hat
    tau_hat = h.effect.nuisance["mu1"] - h.effect.nuisance["mu0"]
    fold = h.effect.nuisance["fold"]
    group = np.empty(len(phi), dtype=int)
    for k in np.unique(fold):                        # quartiles within each fold
        rows = fold == k
        group[rows] = np.digitize(tau_hat[rows], np.quantile(tau_hat[rows], [0.25, 0.5, 0.75]))
    dummies = (group[:, None] == np.arange(4)).astype(float)
    ref = sm.OLS(phi, dummies).fit(cov_type="cluster", cov_kwds={"groups": data["g"]})
    gt = h.gates.to_pydict()
    assert np.allclose(gt["estimate"][:4], [phi[group == k].mean() for k in range(4)], atol=1e-12)
    assert np.allclose(gt["std_error"][:4], ref.bse, atol=1e-12)
    contrast = ref.t_test(np.r_[-1.0, 0, 0, 1.0])
    assert gt["estimate"][4] == pytest.approx(float(contrast.effect[0]), abs=1e-12)
    assert gt["std_error"][4] == pytest.approx(float(contrast.sd[0, 0]), abs=1e-12)
    assert gt["n"][:4] == np.bincount(group).tolist()


def test_heterogeneity_needs_controls_named_among_x():
    with pytest.raises(ValueError, match="covariates \\['age'\\] are not among the controls"):
        _fit(_trial(1), covariates=["age"])


REPS = 2000


@pytest.fixture(scope="module")
def study():
    """2,000 replications of each design (about 15-30 s each), run once for
    the three tests below: per κ, the BLP slope on x1 and GATES' top − bottom
    difference (estimate, and whether its interval covers 0)."""
    out = {}
    for kappa in (0.5, 0.0):
        cover_slope, cover_gap, gap_est = [], [], []
        for r in range(REPS):
            h = _fit(_trial(1000 + r, kappa=kappa), covariates=["x1"], groups=3)
            slope = h.blp.to_pylist()[1]
            cover_slope.append(slope["ci_low"] <= kappa <= slope["ci_high"])
            gap = h.gates.to_pylist()[-1]
            cover_gap.append(gap["ci_low"] <= 0 <= gap["ci_high"])
            gap_est.append(gap["estimate"])
        out[kappa] = np.array(cover_slope), np.array(cover_gap), np.array(gap_est)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kappa", [0.5, 0.0])
def test_blp_slope_covers_known_heterogeneity_and_none(study, kappa):
    """The BLP slope on x1 covers κ = 0.5 (heterogeneous design) and 0
    (constant effect) within montecarlo.coverage_band(0.95, 2000) =
    [0.9345, 0.9655] (a true 0.92 passes with probability < 0.01; measured
    0.955 in both). It used 300 replications and a band [0.91, 0.99]."""
    assert_covers(study[kappa][0], 0.95, f"BLP slope coverage (kappa = {kappa})")


@pytest.mark.slow
def test_gates_difference_finds_heterogeneity_and_guards_its_coverage(study):
    """With heterogeneity the top − bottom difference is positive in most
    samples. With a constant effect its interval under-covers (0.8835
    measured: the SD of the difference is about 1.4 times its CR1 SE; see
    rfp/effects/heterogeneity.py), so its coverage is only guarded at 0.86 (3
    binomial SEs below 0.8835) against getting worse: not a nominal test."""
    assert np.mean(study[0.5][2] > 0) > 0.9
    assert np.mean(study[0.0][1]) >= 0.86, np.mean(study[0.0][1])


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "known bias: with a constant effect GATES' top - bottom difference averages +0.054 over "
    "2,000 replications (Monte Carlo SE 0.011); the 300-replication version could not see it"))
def test_gates_difference_is_centred_on_zero_without_heterogeneity(study):
    """With a constant effect the top − bottom difference is centred on 0
    (within 3 Monte Carlo SEs). It fails today (mean 0.054, SE 0.011):
    marked xfail(strict=True), so that a fix shows up as an unexpected pass."""
    gap_est = study[0.0][2]
    assert abs(gap_est.mean()) <= 3 * gap_est.std(ddof=1) / np.sqrt(REPS)
