"""Data that used to give silent wrong results or raw library errors
(issue 10, items 8-12): each is now a ValueError naming the column, or the
correct result."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import rfp
from rfp.baselines.fixed_effects import fixed_effects

FAST = dict(max_steps=20, patience=None, hidden=(4,))


def frame(n_clusters=8, per=10, seed=0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_clusters), per)
    d = (g % 2).astype(float)
    x = rng.normal(size=g.size) + 0.3 * d
    y = 1.0 + 0.5 * d + x + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "d": d, "g": g})


# ---- item 8: extreme magnitudes -------------------------------------------

@pytest.mark.parametrize("column, scale, message", [
    ("x", 1e154, "control column 'x' has values as large as"),
    ("x", 1e-300, "control column 'x' has values as small as"),
    ("y", 1e160, "outcome column 'y' has values as large as"),
])
def test_extreme_magnitudes_are_named(column, scale, message):
    df = frame()
    df[column] = df[column] * scale
    with pytest.raises(ValueError, match=message):
        rfp.fit(df, y="y", x=["x"], cluster="g", **FAST)
    with pytest.raises(ValueError, match=message.replace("'x'", r"'x\[:, 0\]'")):
        rfp.fit_arrays(df[["x"]].to_numpy(), df["y"].to_numpy(), df["g"].to_numpy(), **FAST)


def test_one_huge_value_in_a_control():
    """One value of 1.3e154 used to overflow the column's SD to Inf, so the
    column was silently dropped; the message names the column."""
    df = frame()
    df.loc[3, "x"] = 1.3e154
    with pytest.raises(ValueError, match=r"control column 'x' has values as large as 1.3e\+154"):
        rfp.fit(df, y="y", x=["x"], cluster="g", **FAST)
    with pytest.raises(ValueError, match="control column 'x' has values as large"):
        rfp.effect(df, y="y", d="d", x=["x"], cluster="g", folds=2, **FAST)


def test_entropy_balancing_on_a_huge_column_is_an_error_not_balance():
    """It used to report 'balance reached' and SMD 0 while the means differed by 1e300."""
    df = frame()
    df["big"] = df["x"] * 1e300
    with pytest.raises(ValueError, match="covariate column 'big' has values as large"):
        rfp.balance(df, "d", ["x", "big"], method="entropy")


OLS_FIT = dict(model="linear", alpha=1.0, learning_rate=0.05, schedule="cosine",
               max_steps=3000, patience=None, validation_share=0.0)


def test_ordinary_magnitudes_still_fit():
    """The limits above refuse only what standardisation cannot handle: on
    ordinary data a converged alpha = 1 linear fit is OLS (numpy lstsq), and
    columns far from 1 but within the limits (x or y times 1e-100 ... 1e100)
    give the same fit, rescaled: predictions / s_y equal those on the
    original data to 1e-9 (the standardised problem is the same one)."""
    df = frame()
    X = np.column_stack([np.ones(len(df)), df["x"]])
    ols = X @ np.linalg.lstsq(X, df["y"].to_numpy(), rcond=None)[0]
    base = rfp.fit(df, y="y", x=["x"], cluster="g", **OLS_FIT).predict(df, as_numpy=True)
    np.testing.assert_allclose(base, ols, atol=1e-6)
    for sx, sy in [(1e100, 1.0), (1e-100, 1.0), (1.0, 1e100), (1.0, 1e-100), (1e100, 1e-100)]:
        scaled = df.assign(x=df["x"] * sx, y=df["y"] * sy)
        pred = rfp.fit(scaled, y="y", x=["x"], cluster="g", **OLS_FIT).predict(scaled, as_numpy=True)
        np.testing.assert_allclose(pred / sy, base, rtol=1e-9, err_msg=f"x * {sx}, y * {sy}")
    # the mlp's predictions are scale-free in the same way (same seed, same steps)
    mlp = rfp.fit(df, y="y", x=["x"], cluster="g", **FAST).predict(df, as_numpy=True)
    big = df.assign(x=df["x"] * 1e100)
    np.testing.assert_allclose(rfp.fit(big, y="y", x=["x"], cluster="g", **FAST)
                               .predict(big, as_numpy=True), mlp, rtol=1e-9)


# ---- item 9: overlapping roles ----------------------------------------------

def test_overlapping_roles_are_refused():
    df = frame()
    with pytest.raises(ValueError, match="^the outcome 'y' is also a control: remove it from "
                                         "the controls$"):
        rfp.fit(df, y="y", x=["y", "x"], cluster="g", **FAST)
    with pytest.raises(ValueError, match="^the cluster variable 'g' is also a control; rfp never "
                                         "uses the cluster as an input"):
        rfp.fit(df, y="y", x=["x", "g"], cluster="g", **FAST)
    with pytest.raises(ValueError, match="the outcome and the treatment are the same column 'd'"):
        rfp.effect(df, y="d", d="d", x=["x"], cluster="g", **FAST)
    with pytest.raises(ValueError, match="the treatment 'd' is also a control"):
        rfp.effect(df, y="y", d="d", x=["x", "d"], cluster="g", **FAST)
    with pytest.raises(ValueError, match="the outcome 'y' is also the cluster"):
        rfp.fit(df, y="y", x=["x"], cluster="y", **FAST)
    with pytest.raises(ValueError, match="the treatment 'd' is also a covariate"):
        rfp.balance(df, "d", ["x", "d"])


# ---- item 10: a pandas index is never data ------------------------------------

def test_pandas_index_is_not_taken_as_a_control():
    """x="all" (every other column) must not take the index as a column."""
    df = frame(seed=3)
    filtered = df[df["x"] > -1.0]          # index no longer 0..n-1
    clean = filtered.reset_index(drop=True)
    m = rfp.fit(filtered, y="y", x="all", cluster="g", **FAST)
    assert m.x_names == ["x", "d"]
    same = rfp.fit(clean, y="y", x="all", cluster="g", **FAST)
    np.testing.assert_array_equal(m.predict(clean, as_numpy=True), same.predict(clean, as_numpy=True))
    e = rfp.effect(filtered, y="y", d="d", x="all", cluster="g", folds=2, model="linear",
                   max_steps=20, patience=None)
    e_clean = rfp.effect(clean, y="y", d="d", x="all", cluster="g", folds=2, model="linear",
                         max_steps=20, patience=None)
    assert e.estimate == e_clean.estimate
    t = rfp.compare(filtered, y="y", d="d", x="all", cluster="g", methods=["fixed_effects"])
    t_clean = rfp.compare(clean, y="y", d="d", x="all", cluster="g", methods=["fixed_effects"])
    assert t.column("estimate").to_pylist() == t_clean.column("estimate").to_pylist()


# ---- item 11: constant outcome, wide integers, duplicate names -----------------

def test_constant_outcome_in_dml_is_named():
    df = frame()
    df["y"] = 3.0
    with pytest.raises(ValueError, match=r"outcome column 'y' is constant \(every row is 3\)"):
        rfp.effect(df, y="y", d="d", x=["x"], cluster="g", method="dml", folds=2, **FAST)


def test_int64_beyond_2_53_is_the_nearest_float():
    df = frame()
    big = (np.arange(len(df)) + 2 ** 60).astype(np.int64)
    t = pa.table({"y": df["y"], "x": pa.array(big), "g": df["g"]})
    t_float = pa.table({"y": df["y"], "x": big.astype(float), "g": df["g"]})
    m = rfp.fit(t, y="y", x=["x"], cluster="g", **FAST)
    m_float = rfp.fit(t_float, y="y", x=["x"], cluster="g", **FAST)
    np.testing.assert_array_equal(m.predict(t, as_numpy=True), m_float.predict(t_float, as_numpy=True))


def test_duplicate_column_names_are_named():
    df = frame()
    t = pa.Table.from_arrays([pa.array(df["y"]), pa.array(df["x"]), pa.array(df["x"] + 1),
                              pa.array(df["g"])], names=["y", "x", "x", "g"])
    with pytest.raises(ValueError, match=r"column name\(s\) \['x'\] appear more than once"):
        rfp.fit(t, y="y", x=["x"], cluster="g", **FAST)
    with pytest.raises(ValueError, match=r"column name\(s\) \['x'\] appear more than once"):
        rfp.fit(t, y="y", x="all", cluster="g", **FAST)
    dup = pd.concat([df[["y", "x"]], df[["x"]], df[["g"]]], axis=1)
    with pytest.raises(ValueError, match=r"column name\(s\) \['x'\] appear more than once"):
        rfp.fit(dup, y="y", x=["x"], cluster="g", **FAST)


# ---- item 12: messages ---------------------------------------------------------

def test_all_zero_weights_say_so():
    df = frame()
    with pytest.raises(ValueError, match="weights are all zero"):
        rfp.fit(df, y="y", x=["x"], cluster="g", weights=np.zeros(len(df)), **FAST)


def test_per_observation_weights_work_in_effect():
    df = frame()
    ones = rfp.effect(df, y="y", d="d", x=["x"], cluster="g", folds=2, weights=np.ones(len(df)),
                      **FAST)
    obs = rfp.effect(df, y="y", d="d", x=["x"], cluster="g", folds=2, **FAST)
    assert ones.estimate == obs.estimate
    w = np.where(df["g"] < 2, 3.0, 1.0)
    weighted = rfp.effect(df, y="y", d="d", x=["x"], cluster="g", folds=2, weights=w, **FAST)
    assert np.isfinite(weighted.estimate) and weighted.estimate != obs.estimate
    with pytest.raises(ValueError, match=r"weights has 3 value\(s\) but the data have 80 rows"):
        rfp.effect(df, y="y", d="d", x=["x"], cluster="g", folds=2, weights=[1.0, 2.0, 3.0],
                   **FAST)


def test_predict_on_zero_rows_is_empty():
    df = frame()
    m = rfp.fit(df, y="y", x=["x"], cluster="g", **FAST)
    out = m.predict(df.iloc[:0], as_numpy=True)
    assert out.shape == (0,)
    with pytest.raises(ValueError, match=r"\['x'\] not found"):
        m.predict(pd.DataFrame({"z": []}))


def test_string_treatment_is_told_to_code_numbers():
    df = frame()
    df["d"] = np.where(df["d"] == 1, "yes", "no")
    with pytest.raises(ValueError, match=r"treatment column 'd' must be numeric.*code it as "
                                         r"numbers \(0/1 for a binary treatment\)"):
        rfp.effect(df, y="y", d="d", x=["x"], cluster="g", **FAST)


def test_fixed_effects_alone_needs_no_folds_and_no_controls():
    df = frame(n_clusters=4)
    t = rfp.compare(df, y="y", d="d", x=[], cluster="g", methods=["fixed_effects"], folds=50)
    ref = fixed_effects(pa.Table.from_pandas(df), "y", "d", controls=[], cluster="g")
    assert t.num_rows == 1 and t.column("note").to_pylist() == [""]
    assert t.column("estimate")[0].as_py() == pytest.approx(ref.row()["estimate"], rel=1e-12)
