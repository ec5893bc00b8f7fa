"""Settings: the defaults of a fit and the one validation every entry point uses.

``validate(settings, context)`` checks each setting by name, type and range
and returns them normalised (whole numbers as ``int``, ``hidden`` as a tuple).
A wrong type is a ``TypeError`` and a value out of range a ``ValueError``;
both name the setting, say what it must be and give the default as an
example. ``rfp.fit``, ``fit_arrays``, ``effect``, ``compare``, ``balance``, ``fixed_effects``,
``rfp.load`` (settings read from a file) and every R front end (through
``R/backend-bridge.R``) call it, so R and Python say the same.

The rules are one table, ``RULES`` (a setting per line), and the names each
entry point takes are ``CONTEXTS``: adding a setting is a line in
``DEFAULTS`` (for a fit setting) and a line in ``RULES``.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from rfp.core.models import ACTIVATIONS

DEFAULTS = dict(
    model="mlp", hidden=(32, 32), activation="tanh",
    alpha=0.5, inner_steps=1, inner_lr=0.1, first_order=False,
    loss="squared", weights=None, equal_clusters=False, penalty=0.0,
    learning_rate=1e-2, clip_norm=1.0, schedule="constant", max_steps=2000, patience=200,
    min_steps=50,
    eval_every=10, validation_share=0.2, seed=0,
    dtype="float64", batch_clusters=None, devices=None,   # speed (train.py)
    # text columns (text.py, models.text_bag): the model after the pooled
    # token embeddings, the embedding's size, the vocabulary's, tokens per text
    # the fewest clusters a word must appear in to enter the vocabulary
    head="mlp", embedding_dim=16, vocab_size=2000, max_tokens=32, word_clusters=2,
)

MAX_WIDTH = 10_000      # units in a layer (hidden, width): 10^4 x 10^4 is 0.8 GB per matrix
MAX_ODE_STEPS = 1_000   # RK4 steps of the neural ODE, unrolled when compiled
MAX_SEED = 2 ** 63 - 1  # numpy and JAX take seeds in [0, 2^63)
MODELS = ("linear", "mlp", "neural_ode", "text")


@dataclass(frozen=True)
class Rule:
    """What one setting may be.  kind: number, whole, flag, choice, sizes,
    weights (case weights), model, activation, penalty_or_cv, trim, progress or column (a column
    name, checked by the data layer)."""
    kind: str
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    none: bool = False          # None allowed (e.g. no clipping, no early stopping)
    infinite: bool = False      # +inf allowed (e.g. lam = inf: complete pooling)
    choices: tuple = ()


def number(low, high=math.inf, low_open=False, high_open=False, none=False, infinite=False):
    return Rule("number", low, high, low_open, high_open, none, infinite)


def whole(low, high=MAX_SEED, none=False):
    return Rule("whole", low, high, none=none)


def choice(*values, none=False):
    return Rule("choice", choices=values, none=none)


FLAG = Rule("flag")

RULES = {
    # fit settings (DEFAULTS), and the neural ODE's width and steps
    "model": Rule("model"),
    "hidden": Rule("sizes", 1, MAX_WIDTH),
    "activation": Rule("activation"),
    "alpha": number(0, 1),
    "inner_steps": whole(0, 10_000),   # a sanity bound: each step is a gradient per cluster
    "inner_lr": number(0),
    "first_order": FLAG,
    "loss": choice("squared", "logistic"),
    "weights": Rule("weights", none=True),   # case weights: a column name or one number per row
    "equal_clusters": FLAG,                  # each cluster weighs the same in the loss
    "penalty": number(0),
    "learning_rate": number(0, low_open=True),
    "clip_norm": number(0, low_open=True, none=True),
    "schedule": choice("constant", "cosine"),
    "max_steps": whole(1),
    "patience": whole(1, none=True),     # None: no early stopping; 0 would stop at once
    "min_steps": whole(0),   # early stopping keeps no step before this (validation/TUNING.md)
    "eval_every": whole(1),
    "validation_share": number(0, 1, high_open=True),
    "seed": whole(0),
    "dtype": choice("float64", "float32"),   # training precision; results in float64
    "cv_dtype": choice("float32", "float64"),   # precision of tune's cross-validation curves
    "ensemble": whole(1, 1000),   # tune: models refitted from different starts, averaged
    "batch_clusters": whole(1, none=True),   # clusters per outer step (minibatch.py)
    "devices": Rule("devices", 1, MAX_SEED, none=True),   # a whole number >= 1 or 'all' (devices.py)
    "width": whole(1, MAX_WIDTH),
    "steps": whole(1, MAX_ODE_STEPS),
    "head": choice("mlp", "linear"),
    "embedding_dim": whole(1, MAX_WIDTH),
    "vocab_size": whole(3, 1_000_000),       # [PAD], [UNK] and at least one token
    "max_tokens": whole(1, 100_000),
    "word_clusters": whole(1),
    "progress": Rule("progress"),
    # effects, comparisons and tuning (folds of whole clusters)
    "folds": whole(2),
    "one_se": FLAG,
    "margin": number(0),      # tune: paired SEs a more flexible candidate must win by (selection.py)
    "simple": FLAG,           # tune: the constant and linear candidates join the table
    "repeats": whole(1, none=True),          # None: 5 below 100 clusters, else 1
    "level": number(0, 1, low_open=True, high_open=True),
    "clip": number(0, 0.5, high_open=True),
    "warn_share": number(0, 1, none=True),
    "icc": number(0, 1, none=True),
    "estimand": choice("ATE", "ATT"),
    "design": choice("cluster", "individual", none=True),
    "na_action": choice("fail", "omit"),
    "propensity": choice("auto", "cluster", "individual"),
    "propensity_penalty": Rule("penalty_or_cv", 0),
    "nuisance": choice("select", "method", "linear", "constant"),   # nuisance.py's ladder
    "trim": Rule("trim", 0, 0.5, low_open=True, high_open=True, none=True),   # None, "crump", α
    "fold": Rule("column", none=True),       # given fold labels (dml_plm; checked there)
    "groups": Rule("groups", 2, 10_000, none=True),   # GATES groups: 0 or None skips them
    # small-cluster inference (inference.py, wild_bootstrap.py)
    "vcov": choice("CR1", "CR2", "wild"),
    "bootstrap_draws": whole(99),
    "bootstrap_weights": choice("rademacher", "webb"),
    # balancing weights
    "method": choice("entropy", "hierarchical", "cluster"),
    "lam": number(0, infinite=True),
    "max_iter": whole(1, 100_000),
    "tol": number(0),
    "sd": choice("treated", "pooled"),
    "standardize": FLAG,
    "base_weights": Rule("column", none=True),
    "cluster_x": Rule("column"),
    "fallback": choice("approximate", "none"),   # approximate balance when exact is infeasible
    "slack": number(0),                      # SDs of the approximate balance
}

FIT = (*DEFAULTS, "width", "steps", "progress")
NUISANCE = tuple(n for n in FIT if n != "loss")
CONTEXTS = {
    "fit": FIT,
    "tune": (*FIT, "folds", "one_se", "cv_dtype", "ensemble", "margin", "simple"),
    "dml": (*NUISANCE, "folds", "seed", "repeats", "level", "warn_share", "design",
            "na_action", "vcov", "nuisance", "fold"),
    "aipw": (*NUISANCE, "estimand", "folds", "seed", "repeats", "clip", "design", "level",
             "na_action", "propensity", "propensity_penalty", "vcov", "nuisance", "trim"),
    "heterogeneity": (*NUISANCE, "folds", "seed", "repeats", "clip", "design", "level",
                      "na_action", "propensity", "propensity_penalty", "vcov", "nuisance",
                      "trim", "groups"),
    "t_learner": (*NUISANCE, "seed", "design", "na_action"),
    "compare": (*NUISANCE, "folds", "seed", "level", "repeats", "clip", "icc", "warn_share",
                "na_action", "propensity", "propensity_penalty", "vcov", "bootstrap_draws",
                "bootstrap_weights", "nuisance", "trim"),
    "fixed_effects": ("weights", "na_action", "level", "tol", "max_iter", "vcov",
                      "bootstrap_draws", "bootstrap_weights", "seed"),
    "balance:entropy": ("method", "weights", "base_weights", "na_action", "sd", "max_iter", "tol",
                        "fallback", "slack"),
    "balance:hierarchical": ("method", "weights", "lam", "na_action", "sd", "standardize"),
    "balance:cluster": ("method", "weights", "icc", "cluster_x", "na_action", "sd", "tol",
                        "fallback", "slack"),
}
CONTEXTS = {k: tuple(dict.fromkeys(v)) for k, v in CONTEXTS.items()}  # seed is in two lists
LOSS_PER_NUISANCE = ("loss is set per nuisance (squared for outcomes, logistic for a binary "
                     "treatment); do not pass loss=")


def validate(settings: dict, context: str = "fit", *, saved: bool = False, data=None) -> dict:
    """Check ``settings`` (a dict name -> value) for the entry point
    ``context`` (a key of ``CONTEXTS``) and return them normalised.  Only the
    settings given are checked; defaults are not filled in.  ``saved``: the
    settings come from a model file (then ``model`` may be ``"user"``).
    ``data``: the entry point's data, when it has them: ``weights = "obs"`` /
    ``"cluster"`` naming one of its columns is that column (case weights,
    with a FutureWarning from ``data.case_weights``), not the former mode."""
    if context not in CONTEXTS:
        raise ValueError(f"unknown settings context {context!r}; known: {sorted(CONTEXTS)}")
    if not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict of name -> value, got {type(settings).__name__}")
    known = CONTEXTS[context]
    if "loss" in settings and "loss" not in known and context in ("dml", "aipw", "t_learner",
                                                                  "compare"):
        raise TypeError(LOSS_PER_NUISANCE)
    unknown = [str(n) for n in settings if n not in known]
    if unknown:
        raise TypeError(f"unknown setting(s) {', '.join(repr(n) for n in unknown)}; known: "
                        f"{', '.join(n for n in known if n != 'progress')}")
    out = {name: check(name, value, saved=saved) for name, value in settings.items()}
    if isinstance(out.get("weights"), str) and out["weights"] in OLD_WEIGHTS:
        if out["weights"] not in column_names(data):   # a column of that name wins
            out = _old_weights(out, context, saved)
    return out


def column_names(data) -> set:
    """The column names of ``data`` (a table, data frame, dict of columns or
    Simulation), read without converting it; empty when there are none."""
    data = getattr(data, "data", data) if type(data).__name__ == "Simulation" else data
    try:
        if isinstance(data, dict):
            return {str(k) for k in data}
        names = getattr(data, "column_names", None)
        if names is None:
            names = getattr(data, "columns", None)
        return {str(n) for n in names} if names is not None else set()
    except TypeError:
        return set()


OLD_WEIGHTS = ("obs", "cluster")   # weights' former modes (equal_clusters now), for one release


def _old_weights(out: dict, context: str, saved: bool) -> dict:
    """weights = "obs" / "cluster", the former modes: equal_clusters = False /
    True and no case weights, with a FutureWarning (none for a saved model)."""
    mode = out.pop("weights")
    equal = mode == "cluster"
    if "equal_clusters" not in CONTEXTS[context]:
        if equal:
            raise ValueError("weights = 'cluster' (equal cluster weights) applies to the "
                             "method's fits only; here weights takes case weights (a column "
                             "name or one number per row)")
    elif "equal_clusters" in out and out["equal_clusters"] != equal:
        raise ValueError(f"weights = {mode!r} (the former mode) contradicts equal_clusters = "
                         f"{out['equal_clusters']}; drop weights and keep equal_clusters")
    else:
        out["equal_clusters"] = equal
    out["weights"] = None
    if not saved:
        import warnings
        warnings.warn(
            f"weights = {mode!r} is deprecated and will be removed in the next release: weights "
            f"now takes case weights (a column name or one number per row, as in lm and "
            f"fixest); use equal_clusters = {equal} for "
            f"{'equal cluster weights' if equal else 'each observation counting once'}",
            FutureWarning, stacklevel=3)
    return out


def check(name: str, value, saved: bool = False):
    """One setting against its rule (``RULES[name]``); the normalised value."""
    rule = RULES[name]
    if value is None:
        if rule.none or rule.kind in ("progress",):
            return None
        raise TypeError(_must(name, rule) + ", got None")
    kind = rule.kind
    if kind == "number":
        return _number(name, value, rule)
    if kind == "whole":
        return _whole(name, value, rule)
    if kind == "flag":
        if not _is_bool(value):
            raise TypeError(_must(name, rule) + f", got {_show(value)}")
        return bool(value)
    if kind == "choice":
        if not isinstance(value, str) or value not in rule.choices:
            err = TypeError if not isinstance(value, str) else ValueError
            raise err(_must(name, rule) + f", got {_show(value)}")
        return value
    if kind == "sizes":
        return _sizes(name, value, rule)
    if kind == "weights":
        return _weights(name, value, rule)
    if kind == "model":
        return _model(value, saved)
    if kind == "activation":
        if callable(value):
            return value
        if not isinstance(value, str) or value not in ACTIVATIONS:
            err = TypeError if not isinstance(value, str) else ValueError
            raise err(_must(name, rule) + f", got {_show(value)}")
        return value
    if kind == "groups":
        try:
            n = _whole(name, value, Rule("whole", 0, rule.high))
        except (TypeError, ValueError) as e:
            raise type(e)(_must(name, rule) + f", got {_show(value)}"
                          + (" (a string: pass the number itself)" if isinstance(value, str)
                             else "")) from None
        if n == 1:
            raise ValueError(_must(name, rule) + ", got 1")
        return n
    if kind == "devices":
        return "all" if isinstance(value, str) and value == "all" else _whole(name, value, rule)
    if kind == "penalty_or_cv":
        return "cv" if isinstance(value, str) and value == "cv" else _number(name, value, rule)
    if kind == "trim":
        if isinstance(value, str):
            if value != "crump":
                raise ValueError(_must(name, rule) + f", got {_show(value)}")
            return value
        return _number(name, value, rule)
    if kind == "progress":
        if _is_bool(value):
            return bool(value)
        if callable(value):
            return value
        raise TypeError(_must(name, rule) + f", got {_show(value)}")
    return value  # a column name: the data layer checks it


# ----------------------------------------------------------------------------
# the kinds

def _is_bool(value) -> bool:
    return type(value).__name__ in ("bool", "bool_")


def _real(name, value, rule):
    """A real number (not a bool, not a string), as float; NaN is an error."""
    if _is_bool(value) or isinstance(value, (str, bytes)) or not isinstance(value, numbers.Real):
        raise TypeError(_must(name, rule) + f", got {_show(value)}"
                        + (" (a string: pass the number itself)" if isinstance(value, str) else ""))
    x = float(value)
    if math.isnan(x):
        raise ValueError(_must(name, rule) + ", got NaN")
    return x


def _in_range(x, rule) -> bool:
    if math.isinf(x) and not (rule.infinite and x > 0):
        return False
    low_ok = x > rule.low if rule.low_open else x >= rule.low
    high_ok = x < rule.high if rule.high_open else x <= rule.high
    return low_ok and high_ok


def _number(name, value, rule):
    x = _real(name, value, rule)
    if not _in_range(x, rule):
        raise ValueError(_must(name, rule) + f", got {_show(value)}")
    return x


def _whole(name, value, rule):
    if isinstance(value, numbers.Integral) and not _is_bool(value):
        n = int(value)
    else:
        x = _real(name, value, rule)
        if math.isinf(x) or x != math.floor(x):
            raise ValueError(_must(name, rule) + f", got {_show(value)}")
        n = int(x)
    if not rule.low <= n <= rule.high:
        raise ValueError(_must(name, rule) + f", got {_show(value)}")
    return n


def _sizes(name, value, rule):
    if isinstance(value, (str, bytes)) or _is_bool(value):
        raise TypeError(_must(name, rule) + f", got {_show(value)}")
    if isinstance(value, numbers.Real):
        value = (value,)
    try:
        items = list(value)
    except TypeError:
        raise TypeError(_must(name, rule) + f", got {_show(value)}") from None
    out = []
    for v in items:
        try:
            out.append(_whole(name, v, rule))
        except (TypeError, ValueError):
            raise (TypeError if isinstance(v, (str, bytes)) or _is_bool(v) else ValueError)(
                _must(name, rule) + f", got {_show(value)}") from None
    return tuple(out)


def _weights(name, value, rule):
    """Case weights: a column name (checked by the data layer; "obs" and
    "cluster" are the former modes, see ``validate``) or one finite number
    >= 0 per row (their count is checked against the data), not all zero."""
    if isinstance(value, str):
        return value
    if _is_bool(value) or isinstance(value, (numbers.Number, bytes)):
        raise TypeError(_must(name, rule) + f", got {_show(value)}")
    return case_weight_values(value, name)


def case_weight_values(value, name: str = "weights") -> np.ndarray:
    """One finite number >= 0 per row as a float array; an error naming the
    first bad row (counting from 1, as R does) or saying all are zero."""
    try:
        w = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a column name or numbers (one per row), got values "
                        f"that are not numbers") from None
    if w.ndim != 1:
        raise ValueError(f"{name} must be one number per row (a vector), got shape {w.shape}")
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        i = int(bad[0])
        what = "missing (NA/NaN)" if np.isnan(w[i]) else _show(float(w[i]))
        raise ValueError(f"{name} must be finite numbers >= 0 (one case weight per row), but "
                         f"row {i + 1} is {what} ({bad.size} such row(s)); fix or drop those rows")
    if w.size and not np.any(w > 0):
        raise ValueError(f"{name} are all zero: no observation would count; give some "
                         f"observations a positive weight")
    return w


def _model(value, saved):
    if isinstance(value, str):
        if value in MODELS or (saved and value == "user"):
            return value
        raise ValueError(f"model must be one of {list(MODELS)} or an (init, apply) pair of "
                         f"functions, got {_show(value)}")
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(map(callable, value)):
        return value
    raise TypeError(f"model must be one of {list(MODELS)} or an (init, apply) pair of "
                    f"functions, got {_show(value)}")


# ----------------------------------------------------------------------------
# messages

def _bound(x) -> str:
    return _show(x) if not math.isinf(x) else ("Inf" if x > 0 else "-Inf")


def _must(name, rule) -> str:
    """'<name> must be <what>' with the default as an example."""
    k = rule.kind
    if k == "number":
        if rule.high == math.inf:
            what = f"a number {'>' if rule.low_open else '>='} {_bound(rule.low)}"
            what += " (Inf allowed)" if rule.infinite else ""
        else:
            what = (f"a number in {'(' if rule.low_open else '['}{_bound(rule.low)}, "
                    f"{_bound(rule.high)}{')' if rule.high_open else ']'}")
    elif k == "whole":
        what = (f"a whole number >= {_bound(rule.low)}" if rule.high >= MAX_SEED
                else f"a whole number in [{_bound(rule.low)}, {_bound(rule.high)}]")
    elif k == "flag":
        what = "True or False (TRUE or FALSE in R)"
    elif k == "choice":
        what = "one of " + ", ".join(repr(c) for c in rule.choices)
    elif k == "weights":
        what = "a column name or one number >= 0 per row (case weights)"
    elif k == "sizes":
        what = f"a list of layer widths, whole numbers in [{rule.low:g}, {rule.high:g}]"
    elif k == "activation":
        what = "one of " + ", ".join(repr(a) for a in sorted(ACTIVATIONS)) + " or a function"
    elif k == "penalty_or_cv":
        what = "'cv' or a number >= 0"
    elif k == "devices":
        what = "a whole number >= 1 or 'all'"
    elif k == "groups":
        what = (f"0 (no GATES) or a whole number in [{_bound(rule.low)}, {_bound(rule.high)}] "
                f"(quantile groups)")
    elif k == "trim":
        what = "'crump' or a number in (0, 0.5)"
    elif k == "progress":
        what = "None, True, False or a function progress(step, total, train, heldout)"
    else:
        what = "a column name"
    if rule.none:
        what += " or None (NULL in R)"
    example = DEFAULTS.get(name)
    hint = f" (default {_show(example)})" if name in DEFAULTS else ""
    return f"{name} must be {what}{hint}"


def _show(value) -> str:
    """A value as both languages would write it: 2 for 2.0, 'a' for strings."""
    if _is_bool(value):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        x = float(value)
        if math.isfinite(x) and x == math.floor(x) and abs(x) < 1e15:
            return str(int(x))
        return "NaN" if math.isnan(x) else ("Inf" if x == math.inf else
                                            "-Inf" if x == -math.inf else repr(x))
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
