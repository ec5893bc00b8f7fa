"""Fixed-effects baseline against pyfixest (fixest's conventions) and R's
lm + sandwich::vcovCL / estimatr::lm_robust (docs/DESIGN.md, "Comparisons": equal to 1e-8)."""
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from rfp.baselines.fixed_effects import demean, fixed_effects

TOL = 1e-8


def make_data(seed=0, n=900, n_clusters=45):
    """Clusters with random effects; fe1/fe2 cut across clusters, `sub` is a
    split of each cluster in two (nested in it)."""
    rng = np.random.default_rng(seed)
    cl = np.repeat(np.arange(n_clusters), n // n_clusters)
    rng.shuffle(cl)
    fe1 = rng.integers(0, 8, n)
    fe2 = rng.integers(0, 5, n)
    sub = 2 * cl + (rng.random(n) < 0.5)
    u = rng.normal(size=n_clusters)[cl]
    d = rng.normal(size=n) + 0.4 * fe1 - 0.2 * fe2 + 0.5 * u
    x1 = rng.normal(size=n) + 0.3 * d
    y = 0.7 * d - 0.5 * x1 + 0.3 * fe1 + 0.2 * fe2 + 0.3 * (sub % 3) + u + rng.normal(size=n)
    return pd.DataFrame({"y": y, "d": d, "x1": x1, "cl": cl, "fe1": fe1, "fe2": fe2, "sub": sub})


@pytest.fixture(scope="module")
def df():
    return make_data()


def pyfixest_fit(fml, frame):
    pf = pytest.importorskip("pyfixest")
    kwargs = dict(vcov={"CRV1": "cl"}, fixef_rm="none",
                  ssc=pf.ssc(k_adj=True, k_fixef="nonnested", G_adj=True))  # fixest's default
    try:
        from pyfixest.demeaners import MapDemeaner
        kwargs["demeaner"] = MapDemeaner(fixef_tol=1e-13, fixef_maxiter=100_000)
    except ImportError:  # older pyfixest
        kwargs["fixef_tol"] = 1e-13
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = pf.feols(fml, frame, **kwargs)
    return m.coef(), m.se()


@pytest.fixture(scope="module")
def r():
    pytest.importorskip("rpy2")
    import rpy2.robjects as ro
    try:
        ro.r("suppressMessages({library(sandwich); library(estimatr)})")
    except Exception as err:  # pragma: no cover - R packages absent
        pytest.skip(f"R packages missing: {err}")
    return ro


def r_frame(ro, frame):
    return ro.DataFrame({c: ro.FloatVector(frame[c].to_numpy(float)) for c in frame.columns})


def lm_vcovcl(ro, frame, rhs):
    """coef, HC1 cluster SEs and rank from R: lm + sandwich::vcovCL."""
    fn = ro.r(f"""function(d) {{
        fit <- lm(y ~ {rhs}, data = d)
        V <- sandwich::vcovCL(fit, cluster = d$cl, type = "HC1")
        list(coef(fit)[c("d", "x1")], sqrt(diag(V))[c("d", "x1")], fit$rank)
    }}""")
    out = fn(r_frame(ro, frame))
    return np.array(out[0]), np.array(out[1]), int(out[2][0])


CASES = {
    "one FE": (["fe1"], "fe1", "factor(fe1)"),
    "two FEs": (["fe1", "fe2"], "fe1 + fe2", "factor(fe1) + factor(fe2)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_pyfixest_and_lm_vcovcl(df, r, case):
    fe, fixest_fe, lm_fe = CASES[case]
    fit = fixed_effects(df, "y", "d", ["x1"], fe=fe, cluster="cl")
    assert fit.converged
    coef_pf, se_pf = pyfixest_fit(f"y ~ d + x1 | {fixest_fe}", df)
    np.testing.assert_allclose(fit.estimate, coef_pf[["d", "x1"]].to_numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(fit.std_error, se_pf[["d", "x1"]].to_numpy(), rtol=0, atol=TOL)

    coef_r, se_r, rank = lm_vcovcl(r, df, f"d + x1 + {lm_fe}")
    np.testing.assert_allclose(fit.estimate, coef_r, rtol=0, atol=TOL)
    np.testing.assert_allclose(fit.std_error, se_r, rtol=0, atol=TOL)
    assert fit.K == rank          # non-nested FEs: fixest's K is lm's rank
    assert fit.df == df["cl"].nunique() - 1


@pytest.mark.parametrize("nested_fe", ["sub", "cl"])
def test_nested_fe_follows_fixest_not_lm(df, r, nested_fe):
    """FE nested in the cluster: fixest drops its levels from K, lm keeps them."""
    fit = fixed_effects(df, "y", "d", ["x1"], fe=[nested_fe], cluster="cl")
    coef_pf, se_pf = pyfixest_fit(f"y ~ d + x1 | {nested_fe}", df)
    np.testing.assert_allclose(fit.estimate, coef_pf[["d", "x1"]].to_numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(fit.std_error, se_pf[["d", "x1"]].to_numpy(), rtol=0, atol=TOL)
    assert fit.K == 2 + 1

    coef_r, se_r, rank = lm_vcovcl(r, df, f"d + x1 + factor({nested_fe})")
    np.testing.assert_allclose(fit.estimate, coef_r, rtol=0, atol=TOL)
    n = len(df)
    assert rank == 2 + df[nested_fe].nunique()
    assert np.all(se_r > fit.std_error * (1 + 1e-3))          # they do differ...
    rescaled = fit.std_error * np.sqrt((n - fit.K) / (n - rank))
    np.testing.assert_allclose(rescaled, se_r, rtol=0, atol=TOL)  # ...only through K


def test_nested_and_crossed_fe_matches_pyfixest(df):
    fit = fixed_effects(df, "y", "d", ["x1"], fe=["sub", "fe1"], cluster="cl")
    coef_pf, se_pf = pyfixest_fit("y ~ d + x1 | sub + fe1", df)
    np.testing.assert_allclose(fit.estimate, coef_pf[["d", "x1"]].to_numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(fit.std_error, se_pf[["d", "x1"]].to_numpy(), rtol=0, atol=TOL)


def test_no_fe_matches_lm_robust_stata(df, r):
    fit = fixed_effects(df, "y", "d", ["x1"], cluster="cl")
    assert fit.terms == ["(Intercept)", "d", "x1"]
    out = r.r("""function(d) {
        m <- estimatr::lm_robust(y ~ d + x1, data = d, clusters = cl, se_type = "stata")
        list(coef(m), m$std.error, m$p.value, m$conf.low, m$conf.high, m$df)
    }""")(r_frame(r, df))
    est, se, p, lo, hi, dfs = (np.array(v) for v in out)
    np.testing.assert_allclose(fit.estimate, est, rtol=0, atol=TOL)
    np.testing.assert_allclose(fit.std_error, se, rtol=0, atol=TOL)
    np.testing.assert_allclose(fit.p, p, rtol=0, atol=TOL)
    np.testing.assert_allclose(fit.ci_low, lo, rtol=0, atol=TOL)
    np.testing.assert_allclose(fit.ci_high, hi, rtol=0, atol=TOL)
    assert np.all(dfs == fit.df)
    coef_pf, se_pf = pyfixest_fit("y ~ d + x1", df)
    np.testing.assert_allclose(fit.std_error, se_pf.to_numpy(), rtol=0, atol=TOL)


def test_demean_equals_projection_on_dummies():
    """Alternating projections converge to the exact residual of a regression
    on all the dummies (three crossed fixed effects, unbalanced)."""
    rng = np.random.default_rng(3)
    n = 400
    codes = [rng.integers(0, k, n) for k in (6, 9, 4)]
    m = rng.normal(size=(n, 2)) + codes[0][:, None] * 0.5
    got, sweeps, converged = demean(m, codes)
    dummies = np.column_stack([np.eye(c.max() + 1)[c] for c in codes])
    coef, *_ = np.linalg.lstsq(dummies, m, rcond=None)
    assert converged and sweeps > 1
    np.testing.assert_allclose(got, m - dummies @ coef, rtol=0, atol=1e-11)


def test_table_types_and_tidy(df):
    base = fixed_effects(df, "y", "d", ["x1"], fe=["fe1"], cluster="cl")
    for data in (pa.Table.from_pandas(df), {c: df[c].to_numpy() for c in df.columns}):
        other = fixed_effects(data, "y", "d", ["x1"], fe=["fe1"], cluster="cl")
        np.testing.assert_array_equal(other.estimate, base.estimate)
    tidy = base.tidy()
    assert tidy.column_names == ["term", "estimate", "std_error", "t", "p", "ci_low", "ci_high"]
    assert tidy.column("term").to_pylist() == ["d", "x1"]
    row = base.row()
    assert row["ci_low"] < row["estimate"] < row["ci_high"]
    assert base.n == len(df) and base.n_clusters == df["cl"].nunique()


# ---------------------------------------------------------------- bad input

def small():
    rng = np.random.default_rng(1)
    n = 60
    return pd.DataFrame({"outcome": rng.normal(size=n), "dose": rng.normal(size=n),
                         "age": rng.normal(size=n), "village": np.repeat(np.arange(6), 10),
                         "region": np.tile(np.arange(3), 20)})


def test_missing_column_is_named():
    with pytest.raises(ValueError, match="'income'"):
        fixed_effects(small(), "outcome", "dose", ["income"], cluster="village")


def test_non_numeric_treatment_and_control_are_named():
    frame = small().assign(label=lambda f: [f"v{i}" for i in range(len(f))])
    with pytest.raises(ValueError, match="treatment column 'label' must be numeric"):
        fixed_effects(frame, "outcome", "label", cluster="village")
    with pytest.raises(ValueError, match="control column 'label' must be numeric"):
        fixed_effects(frame, "outcome", "dose", ["label"], cluster="village")


def test_missing_values_fail_or_are_omitted_with_count():
    frame = small()
    frame.loc[[3, 17, 40], "age"] = np.nan
    with pytest.raises(ValueError, match="column 'age' has 3 missing"):
        fixed_effects(frame, "outcome", "dose", ["age"], cluster="village")
    with pytest.warns(UserWarning, match="dropped 3 row"):
        fit = fixed_effects(frame, "outcome", "dose", ["age"], cluster="village", na_action="omit")
    clean = fixed_effects(frame.dropna(), "outcome", "dose", ["age"], cluster="village")
    assert fit.n == len(frame) - 3 and fit.n_dropped == 3
    np.testing.assert_allclose(fit.std_error, clean.std_error, rtol=1e-12)


def test_constant_treatment_is_named():
    with pytest.raises(ValueError, match="treatment column 'dose' is constant"):
        fixed_effects(small().assign(dose=1.0), "outcome", "dose", cluster="village")


def test_collinear_regressors_are_named():
    frame = small().assign(age2=lambda f: 2 * f["age"] - f["dose"])
    with pytest.raises(ValueError, match=r"'age2' is collinear with \['dose', 'age'\]"):
        fixed_effects(frame, "outcome", "dose", ["age", "age2"], fe=["region"], cluster="village")
    # a cluster-level treatment is absorbed by cluster fixed effects
    frame = small().assign(dose=lambda f: f["village"] % 2 + 0.5 * f["village"])
    with pytest.raises(ValueError, match="treatment column 'dose' does not vary within"):
        fixed_effects(frame, "outcome", "dose", fe=["village"], cluster="village")


def test_fewer_than_two_clusters_is_named():
    with pytest.raises(ValueError, match="cluster column 'one' has only 1"):
        fixed_effects(small().assign(one=1), "outcome", "dose", cluster="one")
