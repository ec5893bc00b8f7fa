"""Effects with text columns among the controls (issue 21, item 3):
rfp.effect(..., text=) for DML (and AIPW with an individual-level
propensity): the vocabulary is built once on all rows, the method's rung of
each nuisance is the text model, the closed-form rungs take the numeric
controls."""
import warnings

import numpy as np
import pyarrow as pa
import pytest

import rfp
from rfp.effects.estimators import dml_plm
from rfp.effects.crossfit import nuisances
from rfp.effects.reading import read, with_text

TAU = 1.0
FILLER = ["vase", "harbour", "portrait", "garden", "bridge", "river", "window", "study"]
# small and quick: the linear head, few steps, one fold split
FAST = dict(model="linear", embedding_dim=4, max_steps=300, patience=None, repeats=1,
            progress=False)


def confounded_by_words(seed, n_clusters=40, per_cluster=15, tau=TAU):
    """Clustered rows whose confounder is a word: each title holds "red" or
    "blue" and two filler words; a cluster's share of "red" titles is
    U(0.2, 0.8). Treatment is assigned row by row, P(d = 1) = 0.8 with
    "red", 0.2 without; y = tau d + 2 red + 0.5 x1 + u_c + e, u_c ~ N(0, 0.5^2),
    e ~ N(0, 0.5^2). Adjusting for x1 alone leaves the bias
    2 Cov(red, d) / Var(d), about 1.2; the text carries what removes it."""
    rng = np.random.default_rng(seed)
    n = n_clusters * per_cluster
    cluster = np.repeat(np.arange(n_clusters), per_cluster)
    red = rng.random(n) < rng.uniform(0.2, 0.8, n_clusters)[cluster]
    titles = [" ".join(rng.permutation(["red" if r else "blue",
                                        *rng.choice(FILLER, 2, replace=False)])) for r in red]
    x1 = rng.normal(size=n)
    d = (rng.random(n) < np.where(red, 0.8, 0.2)).astype(float)
    u = rng.normal(0, 0.5, n_clusters)
    y = tau * d + 2.0 * red + 0.5 * x1 + u[cluster] + 0.5 * rng.normal(size=n)
    return pa.table({"y": y, "d": d, "x1": x1, "title": titles, "cluster": cluster})


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_dml_with_the_text_recovers_tau_and_without_it_is_biased():
    for seed in range(3):
        data = confounded_by_words(seed)
        with_text = quiet(rfp.effect, data, y="y", d="d", x=["x1"], cluster="cluster",
                          text="title", method="dml", **FAST)
        numeric = quiet(rfp.effect, data, y="y", d="d", x=["x1"], cluster="cluster",
                        method="dml", **FAST)
        # measured (seeds 0, 1, 2): 0.984 (SE 0.065), 0.988 (0.068), 1.100 (0.058)
        assert abs(with_text.estimate - TAU) < 3 * with_text.std_error, (seed, with_text)
        assert with_text.diagnostics["nuisance_models"] == {"g": "method", "m": "method"}
        # measured: 2.178 (0.110), 1.997 (0.083), 2.256 (0.084): 11-15 SEs off
        assert numeric.estimate - TAU > 5 * numeric.std_error, (seed, numeric)


def test_aipw_takes_text_with_an_individual_level_propensity():
    data = confounded_by_words(0)
    out = quiet(rfp.effect, data, y="y", d="d", x=["x1"], cluster="cluster", text="title",
                method="aipw", **FAST)
    # measured: 0.995 (SE 0.080)
    assert out.diagnostics["propensity"] == "individual"
    assert abs(out.estimate - TAU) < 3 * out.std_error
    assert out.diagnostics["nuisance_models"] == {"m": "method", "mu0": "method",
                                                  "mu1": "method"}


def test_same_seed_same_estimate_with_text_alone():
    data = confounded_by_words(1, n_clusters=12, per_cluster=10)
    settings = dict(hidden=(4,), embedding_dim=3, max_steps=40, patience=None, repeats=1,
                    folds=3, progress=False)
    a, b = (quiet(dml_plm, data, "y", "d", None, "cluster", text="title", seed=3,
                  **settings) for _ in range(2))
    assert a.estimate == b.estimate and a.std_error == b.std_error
    assert np.array_equal(a.nuisance["m"], b.nuisance["m"])
    # the method's rung is the text model with the default (mlp) head, on the text alone
    ed = read(data, "y", "d", None, "cluster", text="title")
    assert ed.x.shape == (data.num_rows, 0) and ed.encoder.columns == ["title"]
    fit_settings = {k: v for k, v in settings.items() if k not in ("repeats", "folds")}
    nz = quiet(nuisances, ed, a.nuisance["fold"], ("g",), nuisance="method",
               **with_text(ed, fit_settings))
    config = nz["models"]["g"][0].config
    assert config["model"] == "text" and config["head"] == "mlp" and config["embedding_dim"] == 3
    other = quiet(dml_plm, data, "y", "d", None, "cluster", text="title", seed=4,
                  **settings)
    assert other.estimate != a.estimate


def test_bad_text_input_is_named():
    data = confounded_by_words(0, n_clusters=8, per_cluster=5)
    base = dict(y="y", d="d", x=["x1"], cluster="cluster")
    with pytest.raises(ValueError, match="text column 'x1' holds double, not text"):
        rfp.effect(data, **{**base, "x": None}, text="x1")
    with pytest.raises(ValueError, match="'nope'"):
        rfp.effect(data, **base, text="nope")
    with pytest.raises(ValueError, match="the text column 'd' is also the treatment"):
        rfp.effect(data, **base, text="d")
    with pytest.raises(ValueError, match="the text column 'x1' is also the numeric control"):
        rfp.effect(data, **base, text="x1")
    with pytest.raises(ValueError, match="model must be 'mlp' \\(default\\) or 'linear'"):
        rfp.effect(data, **base, text="title", model="neural_ode")
    with pytest.raises(ValueError, match="model = 'text' needs text columns"):
        rfp.effect(data, **base, model="text")
    with pytest.raises(ValueError, match="embedding_dim"):
        rfp.effect(data, **base, text="title", embedding_dim=0)
    with pytest.raises(ValueError, match="supported for method='dml' and 'aipw'"):
        rfp.effect(data, **base, text="title", method="t_learner")
    # treatment assigned to whole clusters: AIPW's cluster-level propensity has no text
    by_cluster = data.set_column(1, "d", pa.array((data.column("cluster").to_numpy() % 2)
                                                  .astype(float)))
    with pytest.raises(ValueError, match="cluster-level propensity.*method='dml'.*"
                                         "propensity='individual'"):
        rfp.effect(by_cluster, **base, text="title", method="aipw")
    # missing text: named like any column, or dropped with na_action="omit"
    missing = data.set_column(3, "title", pa.array([None] + data.column("title").to_pylist()[1:]))
    with pytest.raises(ValueError, match="column 'title' has 1 missing value.*first at row 1"):
        rfp.effect(missing, **base, text="title")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = rfp.effect(missing, **base, text="title", na_action="omit", folds=2, repeats=1,
                         max_steps=5, patience=None, hidden=(4,), embedding_dim=3,
                         progress=False)
    assert any("dropped 1 row" in str(w.message) for w in seen)
    assert out.n == data.num_rows - 1 and np.isfinite(out.estimate)
