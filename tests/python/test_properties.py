"""Property tests (hypothesis) over the settings space and over table shapes
(issue 10, "Must show"): every call either fits with finite predictions or
raises ValueError / TypeError from rfp's own code, never an error from inside
JAX, NumPy or pyarrow.  About a minute in all (each new shape compiles)."""
import datetime as dt
import math
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings as hyp_settings, strategies as st

import rfp

RFP_DIR = os.path.dirname(os.path.abspath(rfp.__file__))
PROFILE = dict(deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def raised_by_rfp(err: BaseException) -> bool:
    """The frame that raised is in rfp's own code."""
    tb = err.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(RFP_DIR)


def fits_or_says_why(call, predict_on=None):
    try:
        model = call()
    except (ValueError, TypeError) as err:
        assert raised_by_rfp(err), f"{type(err).__name__} from outside rfp: {err}"
        assert str(err), "an error without a message"
        event(f"refused: {str(err)[:40]}")
        return None
    event("fitted")
    if predict_on is not None:
        pred = model.predict(predict_on, as_numpy=True, na_action="omit")
        assert np.all(np.isfinite(pred[~np.isnan(pred)]))
    return model


# ---- the settings space ---------------------------------------------------------

junk = st.sampled_from(["32", "True", "", None, True, False, float("nan"), float("inf"), -1,
                        0, 2.5, 10 ** 12, 2 ** 63, [1, 2], (0,), {"a": 1}, b"x"])
valid = {
    "model": st.sampled_from(["linear", "mlp", "neural_ode"]),
    "hidden": st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple),
    "activation": st.sampled_from(["tanh", "relu", "gelu"]),
    "alpha": st.floats(0, 1),
    "inner_steps": st.integers(0, 2),
    "inner_lr": st.floats(0, 0.3),
    "first_order": st.booleans(),
    "loss": st.just("squared"),
    "equal_clusters": st.booleans(),
    "penalty": st.floats(0, 1),
    "learning_rate": st.floats(1e-4, 0.05),
    "clip_norm": st.one_of(st.none(), st.floats(0.1, 5)),
    "schedule": st.sampled_from(["constant", "cosine"]),
    "max_steps": st.integers(1, 25),
    "patience": st.one_of(st.none(), st.integers(0, 20)),
    "eval_every": st.integers(1, 12),
    "validation_share": st.floats(0, 0.6),
    "seed": st.integers(0, 2 ** 63 - 1),
    "width": st.integers(1, 4),
    "steps": st.integers(1, 3),
}
setting = st.sampled_from(sorted(valid)).flatmap(
    lambda name: st.tuples(st.just(name), st.one_of(valid[name], valid[name], junk)))
settings_space = st.lists(setting, max_size=5).map(dict)


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(5), 6)
    return pa.table({"y": rng.normal(size=30), "x": rng.normal(size=30), "g": g,
                     "d": (g % 2).astype(float)})


@hyp_settings(max_examples=40, **PROFILE)
@given(chosen=settings_space)
def test_any_settings_fit_or_are_refused_by_rfp(small, chosen):
    fits_or_says_why(lambda: rfp.fit(small, y="y", x=["x"], cluster="g", **chosen),
                     predict_on=small)


@hyp_settings(max_examples=8, **PROFILE)
@given(chosen=settings_space)
def test_any_settings_in_effects_are_refused_or_estimate(small, chosen):
    chosen = {k: v for k, v in chosen.items() if k != "loss"}
    try:
        e = rfp.effect(small, y="y", d="d", x=["x"], cluster="g", folds=2, **chosen)
    except (ValueError, TypeError) as err:
        assert raised_by_rfp(err), f"{type(err).__name__} from outside rfp: {err}"
        return
    assert math.isfinite(e.estimate)


# ---- table shapes, types and missing values -----------------------------------------

LABEL_TYPES = {
    "int": lambda c: pa.array(c.astype(np.int64)),
    "str": lambda c: pa.array([f"s{v}" for v in c]),
    "date": lambda c: pa.array([dt.date(2020, 1, 1) + dt.timedelta(days=int(v)) for v in c]),
    "float": lambda c: pa.array(c + 0.5),
    "dictionary": lambda c: pa.array([f"s{v}" for v in c]).dictionary_encode(),
}


@st.composite
def tables(draw):
    sizes = draw(st.one_of(st.lists(st.integers(1, 9), min_size=2, max_size=6),
                           st.lists(st.integers(1, 9), min_size=2, max_size=6),
                           st.lists(st.integers(1, 9), max_size=1)))
    n = int(sum(sizes))
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    x_kind = draw(st.sampled_from(["float", "float", "int", "bool", "string", "constant", "huge"]))
    x = {"float": rng.normal(size=n), "int": rng.integers(-3, 3, size=n),
         "bool": rng.random(n) < 0.5, "string": np.array([f"v{i}" for i in range(n)]),
         "constant": np.ones(n), "huge": rng.normal(size=n) * 1e200}[x_kind]
    y = rng.normal(size=n)
    columns = {"y": pa.array(y), "x": pa.array(x),
               "g": LABEL_TYPES[draw(st.sampled_from(sorted(LABEL_TYPES)))](cluster)}
    if n and draw(st.booleans()):   # missing values in one column
        name = draw(st.sampled_from(["y", "x", "g"]))
        holes = rng.random(n) < 0.2
        values = columns[name].to_pylist()
        columns[name] = pa.array([None if h else v for v, h in zip(values, holes)],
                                 type=columns[name].type)
    table = pa.table(columns)
    container = draw(st.sampled_from(["arrow", "pandas", "pandas_index", "dict"]))
    if container == "arrow":
        data = table
    elif container == "dict":
        data = {k: table.column(k).to_numpy(zero_copy_only=False) for k in table.column_names}
    else:
        data = table.to_pandas()
        if container == "pandas_index":
            data.index = pd.Index(rng.permutation(n) + 100)
    return data, draw(st.sampled_from(["fail", "omit"]))


@hyp_settings(max_examples=50, **PROFILE)
@given(case=tables())
def test_any_table_fits_or_is_refused_by_rfp(case):
    data, na_action = case
    model = fits_or_says_why(lambda: rfp.fit(data, y="y", x="all", cluster="g",
                                             na_action=na_action, model="linear", max_steps=10,
                                             patience=None))
    if model is not None:
        assert model.x_names == ["x"]          # never a pandas index
        pred = model.predict(data, as_numpy=True, na_action="omit")
        assert np.all(np.isfinite(pred[~np.isnan(pred)]))


# ---- case weights, row selections, tuning grids, heterogeneity groups (issue 19) --------

def _weights(kind, n, g, rng):
    if kind == "zeros":
        return np.where(rng.random(n) < 0.5, 0.0, 1.0)
    if kind == "tiny":
        return rng.uniform(1e-300, 1e-290, n)
    if kind == "huge":
        return rng.uniform(1e290, 1e300, n)
    if kind == "one_cluster":
        return (g == g[0]).astype(float)
    return rng.uniform(0.1, 3, n)


@hyp_settings(max_examples=12, **PROFILE)
@given(kind=st.sampled_from(["zeros", "tiny", "huge", "one_cluster", "plain"]),
       keep=st.lists(st.booleans(), min_size=30, max_size=30),
       entry=st.sampled_from(["fit", "effect", "balance"]))
def test_case_weights_and_row_selections_answer_or_are_refused(small, kind, keep, entry):
    rng = np.random.default_rng(1)
    table = small.filter(pa.array(keep)) if any(keep) else small
    n = table.num_rows
    w = _weights(kind, n, table.column("g").to_numpy(), rng)
    common = dict(model="linear", progress=False)
    call = {
        "fit": lambda: rfp.fit(table, y="y", x=["x"], cluster="g", weights=w, max_steps=5,
                               **common),
        "effect": lambda: rfp.effect(table, y="y", d="d", x=["x"], cluster="g", weights=w,
                                     folds=2, alpha=1.0, **common),
        "balance": lambda: rfp.balance(table, "d", ["x"], weights=w),
    }[entry]
    try:
        out = call()
    except (ValueError, TypeError) as err:
        assert raised_by_rfp(err), f"{type(err).__name__} from outside rfp: {err}"
        return
    if entry == "fit":
        assert np.all(np.isfinite(out.predict(table, as_numpy=True)))
    elif entry == "effect":
        assert math.isfinite(out.estimate)
    else:
        assert np.all(np.isfinite(out.weights))


grid_value = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 3),
                       st.sampled_from(["a", None, True, (4,), [2, 2]]))


@hyp_settings(max_examples=12, **PROFILE)
@given(grid=st.dictionaries(st.sampled_from(["alpha", "inner_lr", "inner_steps", "hidden",
                                             "learning_rate"]),
                            st.lists(grid_value, min_size=0, max_size=2), min_size=1,
                            max_size=2))
def test_tuning_grids_answer_or_are_refused(small, grid):
    try:
        m = rfp.tune(small, y="y", x=["x"], cluster="g", grid=grid, folds=2, model="linear",
                     max_steps=5, patience=None, progress=False, simple=False)
    except (ValueError, TypeError) as err:
        assert raised_by_rfp(err), f"{type(err).__name__} from outside rfp: {err}"
        return
    assert np.all(np.isfinite(m.predict(small, as_numpy=True)))


@hyp_settings(max_examples=6, **PROFILE)
@given(groups=st.one_of(st.integers(-1, 8), st.sampled_from([None, 2.5, "3", True])))
def test_heterogeneity_groups_answer_or_are_refused(small, groups):
    try:
        h = rfp.heterogeneity(small, y="y", d="d", x=["x"], cluster="g", groups=groups,
                              folds=2, model="linear", alpha=1.0, progress=False)
    except (ValueError, TypeError) as err:
        assert raised_by_rfp(err), f"{type(err).__name__} from outside rfp: {err}"
        return
    if h.gates is not None:
        assert np.all(np.isfinite(h.gates.column("estimate").to_numpy()))
