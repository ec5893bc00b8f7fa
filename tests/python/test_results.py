"""Python conventions for results: readable repr, summary() (a coefficient
table in pandas, like pyfixest / DoubleML), to_pandas(); x required."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

import rfp
from rfp.baselines.fixed_effects import fixed_effects
from rfp.effects.scores import plm_from_residuals


def data(seed=0, n_clusters=40, per=10):
    rng = np.random.default_rng(seed)
    cl = np.repeat(np.arange(n_clusters), per)
    n = len(cl)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    d = (rng.random(n) < 1 / (1 + np.exp(-0.5 * x1))).astype(float)
    y = d + x1 - 0.5 * x2 + rng.normal(size=n_clusters)[cl] + rng.normal(size=n)
    truth = np.full(n, 1.0)
    return pd.DataFrame({"y": y, "d": d, "x1": x1, "x2": x2, "cl": cl, "truth": truth})


def test_effect_repr_summary_and_pandas():
    df = data()
    rng = np.random.default_rng(1)
    g = df["x1"].to_numpy() + rng.normal(scale=0.1, size=len(df))
    m = np.full(len(df), df["d"].mean())
    e = plm_from_residuals(df["y"].to_numpy(), df["d"].to_numpy(), g, m,
                           df["cl"].to_numpy(), warn_share=None)
    text = repr(e)
    assert text.startswith("rfp effect: dml, 400 observations in 40 clusters")
    assert f"{e.estimate:.4f}" in text and f"{e.std_error:.4f}" in text
    assert "CR1 standard error by cluster; t on 39 df; 95% interval" in text
    s = e.summary()
    assert list(s.index) == ["PLM"]
    assert list(s.columns) == ["estimate", "std_error", "t", "p_value", "ci_low", "ci_high",
                               "df", "se_type"]
    # the p-value from scipy's t distribution directly
    assert s.loc["PLM", "p_value"] == pytest.approx(2 * stats.t.sf(abs(e.estimate / e.std_error), 39))
    assert s.loc["PLM", "se_type"] == "CR1"
    frame = e.to_pandas()
    assert isinstance(frame, pd.DataFrame) and frame.loc[0, "estimate"] == e.estimate


def test_fixed_effects_summary_matches_the_fit_and_prints():
    df = data()
    fit = fixed_effects(df, "y", "d", ["x1", "x2"], cluster="cl", vcov="CR2")
    s = fit.summary()
    assert list(s.index) == ["(Intercept)", "d", "x1", "x2"]
    np.testing.assert_array_equal(s["std_error"].to_numpy(), fit.std_error)
    np.testing.assert_array_equal(s["df"].to_numpy(), fit.df)
    assert (s["se_type"] == "CR2").all()
    assert list(fit.to_pandas()["term"]) == fit.terms
    text = repr(fit)
    assert "CR2 (Bell-McCaffrey), t with Satterthwaite df" in text
    assert f"{fit.estimate[1]:.4f}" in text


def test_comparison_is_the_arrow_table_with_pandas_views():
    df = data()
    cmp = rfp.compare(df, "y", "d", ["x1", "x2"], "cl", methods=["fixed_effects",
                                                                  "entropy_balancing"])
    assert isinstance(cmp.table, pa.Table)
    pd.testing.assert_frame_equal(pa.table(cmp).to_pandas(), cmp.table.to_pandas())  # interchange
    assert cmp.num_rows == 2 and cmp.column("method").to_pylist() == ["fixed_effects",
                                                                       "entropy_balancing"]
    s = cmp.summary()
    assert list(s.index) == [("fixed_effects", "OLS"), ("entropy_balancing", "ATT")]
    np.testing.assert_allclose(s["t"], s["estimate"] / s["std_error"])
    pd.testing.assert_frame_equal(cmp.to_pandas(), cmp.table.to_pandas())
    text = repr(cmp)
    assert text.startswith("rfp comparison: effect of d on y; 400 observations in 40 clusters")
    assert "entropy_balancing" in text and "se_type" in text


def test_balance_result_repr_and_pandas():
    df = data()
    b = rfp.balance(df, "d", ["x1", "x2"])
    assert list(b.summary().index) == ["x1", "x2"]
    assert b.to_pandas().shape[0] == 2
    assert "effective sample size of the controls" in repr(b)


def test_x_is_required_or_all():
    df = data()
    with pytest.raises(ValueError, match=r"x= is required.*x='all'"):
        rfp.fit(df, y="y", cluster="cl", model="linear", max_steps=5)
    with pytest.raises(ValueError, match=r"x= is required"):
        rfp.effect(df, "y", "d", cluster="cl")
    with pytest.raises(ValueError, match=r"x= is required"):
        rfp.compare(df, "y", "d", cluster="cl", methods=["fixed_effects"])
    m = rfp.fit(df.drop(columns=["d", "truth"]), y="y", x="all", cluster="cl", model="linear",
                max_steps=5, patience=None)
    assert m.x_names == ["x1", "x2"]
