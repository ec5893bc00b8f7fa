"""Settings: one validation (rfp.settings.validate) shared by every entry point.

Issue 10, items 5 and 6: values out of range and values of the wrong type are
errors naming the setting, raised by rfp before any JAX code runs; whole
numbers given as floats (what R sends) are accepted when integral.
"""
import numpy as np
import pyarrow as pa
import pytest

import rfp
from rfp import settings
from rfp.training import fit as api
from rfp.simulate import cluster_trial

FAST = dict(max_steps=20, patience=None)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(6), 10)
    return pa.table({"y": rng.normal(size=60), "x": rng.normal(size=60), "g": g,
                     "d": (g % 2).astype(float)})


# (setting, bad value, error type, message fragment)
BAD = [
    ("max_steps", 0, ValueError, "max_steps must be a whole number >= 1 (default 2000), got 0"),
    ("max_steps", -5, ValueError, "max_steps must be a whole number >= 1"),
    ("max_steps", True, TypeError, "max_steps must be a whole number >= 1"),
    ("max_steps", "20", TypeError, "max_steps must be a whole number >= 1"),
    ("clip_norm", -1, ValueError, "clip_norm must be a number > 0 or None"),
    ("clip_norm", 0, ValueError, "clip_norm must be a number > 0 or None"),
    ("learning_rate", 0, ValueError, "learning_rate must be a number > 0"),
    ("learning_rate", -0.01, ValueError, "learning_rate must be a number > 0"),
    ("inner_lr", -0.1, ValueError, "inner_lr must be a number >= 0"),
    ("penalty", -1, ValueError, "penalty must be a number >= 0"),
    ("patience", -1, ValueError, "patience must be a whole number >= 1 or None"),
    ("patience", 0, ValueError, "patience must be a whole number >= 1 or None"),
    ("validation_share", -0.1, ValueError, r"validation_share must be a number in [0, 1)"),
    ("validation_share", 1, ValueError, r"validation_share must be a number in [0, 1)"),
    ("eval_every", 0, ValueError, "eval_every must be a whole number >= 1"),
    ("hidden", (0,), ValueError, "hidden must be a list of layer widths"),
    ("hidden", (-3, 4), ValueError, "hidden must be a list of layer widths"),
    ("hidden", "32", TypeError, "hidden must be a list of layer widths"),
    ("hidden", (3.5,), ValueError, "hidden must be a list of layer widths"),
    ("seed", -1, ValueError, "seed must be a whole number >= 0 (default 0), got -1"),
    ("seed", 2 ** 63, ValueError, "seed must be a whole number >= 0"),
    ("first_order", "False", TypeError, "first_order must be True or False"),
    ("first_order", 1, TypeError, "first_order must be True or False"),
    ("alpha", "0.5", TypeError, "alpha must be a number in [0, 1] (default 0.5), got '0.5'"),
    ("alpha", 1.5, ValueError, "alpha must be a number in [0, 1]"),
    ("alpha", float("nan"), ValueError, "alpha must be a number in [0, 1] (default 0.5), got NaN"),
    ("inner_steps", 2.7, ValueError, "inner_steps must be a whole number in [0, 10000]"),
    ("inner_steps", -1, ValueError, "inner_steps must be a whole number"),
    ("loss", "huber", ValueError, "loss must be one of 'squared', 'logistic'"),
    ("weights", 1, TypeError, "weights must be a column name or one number >= 0 per row"),
    ("weights", [0.0, 0.0], ValueError, "weights are all zero: no observation would count"),
    ("weights", [1.0, -1.0], ValueError, "weights must be finite numbers >= 0 (one case weight "
                                         "per row), but row 2 is -1"),
    ("weights", [1.0, float("nan")], ValueError, "weights must be finite numbers >= 0 (one case "
                                                 "weight per row), but row 2 is missing (NA/NaN)"),
    ("equal_clusters", "yes", TypeError, "equal_clusters must be True or False"),
    ("schedule", "linear", ValueError, "schedule must be one of 'constant', 'cosine'"),
    ("activation", "foo", ValueError, "activation must be one of"),
    ("steps", 10 ** 7, ValueError, "steps must be a whole number in [1, 1000]"),
    ("steps", 0, ValueError, "steps must be a whole number in [1, 1000]"),
    ("width", 0, ValueError, "width must be a whole number in [1, 10000]"),
    ("model", "bogus", ValueError, "model must be one of ['linear', 'mlp', 'neural_ode', 'text']"),
]


@pytest.mark.parametrize("name, value, error, message", BAD,
                         ids=[f"{b[0]}={b[1]!r}" for b in BAD])
def test_validate_names_the_setting(name, value, error, message):
    with pytest.raises(error) as info:
        settings.validate({name: value}, "fit")
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("name, value, error, message", BAD[:8] + BAD[18:24],
                         ids=[f"{b[0]}={b[1]!r}" for b in BAD[:8] + BAD[18:24]])
def test_fit_rejects_before_training(data, name, value, error, message):
    kw = {**FAST, name: value}
    with pytest.raises(error) as info:
        rfp.fit(data, y="y", x=["x"], cluster="g", **kw)
    assert str(info.value).startswith(message)
    with pytest.raises(error):
        rfp.fit_arrays(np.ones((4, 1)), np.arange(4.0), np.array([0, 0, 1, 1]), **kw)


@pytest.mark.parametrize("call", ["dml", "aipw", "t_learner", "compare"])
def test_every_entry_point_validates(data, call):
    """max_steps = 0 used to return the initial parameters (and
    rfp_effect(max_steps = 0L) an estimate with converged = TRUE)."""
    for bad, error, fragment in [({"max_steps": 0}, ValueError, "max_steps must be"),
                                 ({"clip_norm": -1}, ValueError, "clip_norm must be"),
                                 ({"hidden": "32"}, TypeError, "hidden must be"),
                                 ({"max_step": 5}, TypeError, "unknown setting(s) 'max_step'")]:
        with pytest.raises(error) as info:
            if call == "compare":
                rfp.compare(data, y="y", d="d", x=["x"], cluster="g", methods=["dml"], **bad)
            else:
                rfp.effect(data, y="y", d="d", x=["x"], cluster="g", method=call, **bad)
        assert fragment in str(info.value)


def test_estimator_settings_are_checked_too(data):
    with pytest.raises(ValueError, match=r"folds must be a whole number >= 2, got 1"):
        rfp.effect(data, y="y", d="d", x=["x"], cluster="g", folds=1)
    with pytest.raises(ValueError, match=r"clip must be a number in \[0, 0.5\), got 0.7"):
        rfp.compare(data, y="y", d="d", x=["x"], cluster="g", methods=["aipw"], clip=0.7)
    with pytest.raises(TypeError, match="loss is set per nuisance"):
        rfp.effect(data, y="y", d="d", x=["x"], cluster="g", loss="squared")
    with pytest.raises(TypeError, match="unknown setting.*'clip'"):
        rfp.effect(data, y="y", d="d", x=["x"], cluster="g", method="dml", clip=0.1)
    with pytest.raises(ValueError, match=r"level must be a number in \(0, 1\)"):
        rfp.compare(data, y="y", d="d", x=["x"], cluster="g", methods=["dml"], level=1)


def test_balance_validates(data):
    with pytest.raises(ValueError, match="method must be one of 'entropy', 'hierarchical', "
                                         "'cluster', got 'bogus'"):
        rfp.balance(data, "d", ["x"], "g", method="bogus")
    with pytest.raises(ValueError, match=r"lam must be a number >= 0 \(Inf allowed\), got -1"):
        rfp.balance(data, "d", ["x"], "g", method="hierarchical", lam=-1)
    with pytest.raises(ValueError, match=r"icc must be a number in \[0, 1\]"):
        rfp.balance(data, "d", ["x"], "g", method="cluster", icc=2)
    with pytest.raises(TypeError, match="unknown setting.*'lam'"):
        rfp.balance(data, "d", ["x"], method="entropy", lam=1)


def test_integral_numbers_are_whole_numbers():
    """R sends numbers as floats: 20.0 is 20, and hidden = 4 is one layer."""
    out = settings.validate({"max_steps": 20.0, "hidden": 4, "seed": np.int64(3),
                             "patience": None, "alpha": np.float32(0.25),
                             "first_order": np.bool_(True)}, "fit")
    assert out == {"max_steps": 20, "hidden": (4,), "seed": 3, "patience": None,
                   "alpha": 0.25, "first_order": True}
    assert type(out["max_steps"]) is int and type(out["first_order"]) is bool
    assert settings.validate({"lam": float("inf")}, "balance:hierarchical") == {"lam": float("inf")}


def test_defaults_live_in_settings_and_pass_their_own_checks():
    assert api.DEFAULTS is settings.DEFAULTS
    assert settings.validate(dict(settings.DEFAULTS), "fit") == {
        k: (tuple(v) if k == "hidden" else v) for k, v in settings.DEFAULTS.items()}
    # every setting any entry point takes has a rule
    for names in settings.CONTEXTS.values():
        assert set(names) <= set(settings.RULES)


def test_valid_integral_float_settings_fit(data):
    m = rfp.fit(data, y="y", x=["x"], cluster="g", max_steps=20.0, eval_every=10.0,
                hidden=[4.0], patience=None, seed=1.0, model="mlp")
    assert m.config["hidden"] == (4,) and m.best_step == 20


# small-cluster inference settings (vcov, bootstrap_draws, bootstrap_weights):
# the same validator, in every context that takes them
INFERENCE_BAD = [
    ("vcov", "HC1", ValueError, "vcov must be one of 'CR1', 'CR2', 'wild', got 'HC1'"),
    ("vcov", 1, TypeError, "vcov must be one of 'CR1', 'CR2', 'wild', got 1"),
    ("bootstrap_draws", 10, ValueError, "bootstrap_draws must be a whole number >= 99, got 10"),
    ("bootstrap_draws", 999.5, ValueError, "bootstrap_draws must be a whole number >= 99"),
    ("bootstrap_draws", "999", TypeError, "bootstrap_draws must be a whole number >= 99"),
    ("bootstrap_weights", "mammen", ValueError,
     "bootstrap_weights must be one of 'rademacher', 'webb', got 'mammen'"),
]


@pytest.mark.parametrize("context", ["compare", "fixed_effects"])
@pytest.mark.parametrize("name, value, error, message", INFERENCE_BAD,
                         ids=[f"{b[0]}={b[1]!r}" for b in INFERENCE_BAD])
def test_inference_settings_are_validated(context, name, value, error, message):
    with pytest.raises(error) as info:
        settings.validate({name: value}, context)
    assert str(info.value).startswith(message)


def test_inference_settings_per_context():
    ok = {"vcov": "wild", "bootstrap_draws": 999.0, "bootstrap_weights": "webb"}
    assert settings.validate(ok, "compare") == {**ok, "bootstrap_draws": 999}
    assert settings.validate(ok, "fixed_effects")["bootstrap_draws"] == 999
    for method in ("dml", "aipw"):
        assert settings.validate({"vcov": "CR1"}, method) == {"vcov": "CR1"}
        with pytest.raises(TypeError, match="unknown setting.*'bootstrap_draws'"):
            settings.validate({"bootstrap_draws": 999}, method)
    with pytest.raises(TypeError, match="unknown setting.*'vcov'"):
        settings.validate({"vcov": "CR1"}, "t_learner")


def test_fixed_effects_validates_before_reading_the_data():
    """The settings are checked first: no data are needed to see the error."""
    with pytest.raises(ValueError, match="vcov must be one of"):
        rfp.fixed_effects(None, "y", "d", cluster="g", vcov="CR3")
    with pytest.raises(ValueError, match=r"level must be a number in \(0, 1\)"):
        rfp.fixed_effects(None, "y", "d", cluster="g", level=1.5)
    with pytest.raises(ValueError, match="vcov must be one of"):
        rfp.effect(None, "y", "d", ["x"], "g", method="dml", vcov="CR3")


def test_estimator_options_of_the_nuisance_ladder_are_validated(data):
    """nuisance, trim, repeats = None (compare, dml, aipw) and the balancing
    fallback's fallback / slack go through the one validator."""
    for context in ("compare", "dml", "aipw"):
        assert settings.validate({"nuisance": "linear", "repeats": None}, context) == {
            "nuisance": "linear", "repeats": None}
        with pytest.raises(ValueError, match="nuisance must be one of 'select', 'method', "
                                             "'linear', 'constant', got 'forest'"):
            settings.validate({"nuisance": "forest"}, context)
    for context in ("compare", "aipw"):
        assert settings.validate({"trim": "crump"}, context) == {"trim": "crump"}
        assert settings.validate({"trim": 0.1}, context) == {"trim": 0.1}
        assert settings.validate({"trim": None}, context) == {"trim": None}
        for bad, error in ((0.5, ValueError), (0, ValueError), ("tails", ValueError),
                           (True, TypeError)):
            with pytest.raises(error, match=r"trim must be 'crump' or a number in \(0, 0.5\)"):
                settings.validate({"trim": bad}, context)
    with pytest.raises(TypeError, match="unknown setting.*'trim'"):
        settings.validate({"trim": 0.1}, "dml")
    with pytest.raises(ValueError, match="repeats must be a whole number >= 1 or None"):
        rfp.effect(data, y="y", d="d", x=["x"], cluster="g", repeats=0)
    with pytest.raises(ValueError, match="trim must be 'crump' or a number"):
        rfp.compare(data, y="y", d="d", x=["x"], cluster="g", methods=["aipw"], trim=0.7)
    for method in ("entropy", "cluster"):
        ok = settings.validate({"fallback": "none", "slack": 0.5}, f"balance:{method}")
        assert ok == {"fallback": "none", "slack": 0.5}
        with pytest.raises(ValueError, match="fallback must be one of 'approximate', 'none'"):
            settings.validate({"fallback": "exact"}, f"balance:{method}")
        with pytest.raises(ValueError, match="slack must be a number >= 0, got -1"):
            settings.validate({"slack": -1}, f"balance:{method}")
    with pytest.raises(ValueError, match="slack must be a number >= 0"):
        rfp.balance(data, "d", ["x"], "g", method="entropy", slack=-1)
    with pytest.raises(TypeError, match="unknown setting.*'fallback'"):
        rfp.balance(data, "d", ["x"], "g", method="hierarchical", fallback="none")
