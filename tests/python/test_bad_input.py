"""Bad input: a clear ValueError naming the column and the count."""
import numpy as np
import pyarrow as pa
import pytest

import rfp

FAST = dict(max_steps=20, patience=None)


def table(**cols):
    rng = np.random.default_rng(0)
    base = {"y": rng.normal(size=20), "x": rng.normal(size=20), "g": np.repeat(np.arange(4), 5)}
    base.update(cols)
    return pa.table(base)


def fit(t, **kw):
    return rfp.fit(t, y="y", x=["x"], cluster="g", **{**FAST, **kw})


def test_missing_column_is_named():
    with pytest.raises(ValueError, match=r"\['z'\] not found.*available"):
        rfp.fit(table(), y="y", x=["x", "z"], cluster="g")


def test_non_numeric_control_is_named():
    with pytest.raises(ValueError, match="control column 'x' must be numeric.*string"):
        fit(table(x=[str(i) for i in range(20)]))


@pytest.mark.parametrize("col", ["y", "x"])
def test_nan_and_null_are_counted_and_named(col):
    vals = list(np.random.default_rng(1).normal(size=20))
    vals[3], vals[7] = float("nan"), None
    with pytest.raises(ValueError, match=f"column '{col}' has 2 missing value.*row 4.*na_action='omit'"):
        fit(table(**{col: pa.array(vals, type=pa.float64())}))


def test_null_cluster_is_named():
    g = [str(i // 5) for i in range(20)]
    g[0] = None
    with pytest.raises(ValueError, match="column 'g' has 1 missing"):
        fit(table(g=g))


def test_omit_drops_and_reports_the_count():
    vals = list(np.random.default_rng(1).normal(size=20))
    vals[3] = float("nan")
    with pytest.warns(UserWarning, match="dropped 1 row"):
        m = fit(table(x=vals), na_action="omit")
    assert m.n_dropped == 1 and m.n_obs == 19


def test_one_cluster_is_an_error():
    with pytest.raises(ValueError, match="cluster column 'g' has only 1 cluster"):
        fit(table(g=np.zeros(20, int)))


def test_empty_table_is_an_error():
    with pytest.raises(ValueError, match="no rows"):
        fit(table().slice(0, 0))


def test_bad_settings_are_errors_not_tracebacks():
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\]"):
        fit(table(), alpha=1.5)
    with pytest.raises(TypeError, match="unknown setting"):
        fit(table(), inner_step=3)
    with pytest.raises(ValueError, match="logistic loss needs an outcome coded 0/1"):
        fit(table(), loss="logistic")


def test_prediction_data_checked_too():
    m = fit(table())
    with pytest.raises(ValueError, match=r"\['x'\] not found"):
        m.predict(pa.table({"z": [1.0]}))
    with pytest.raises(ValueError, match="column 'x' has 1 missing"):
        m.predict(pa.table({"x": [1.0, None]}))
