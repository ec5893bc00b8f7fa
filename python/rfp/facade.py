"""The one module the R package imports (``reticulate::import("rfp.facade")``).

Plain functions taking and returning arrays, tables, dicts and numbers: the
estimators' entry points (``fit``, ``tune``, ``effect``, ``compare``,
``heterogeneity``, ``balance``), the settings validator, persistence, the
simulations, and the helpers R needs to move numbers and warnings across
the boundary. R computes no statistic itself: intervals (``weighted_att``)
and the T-learner's plug-in estimate (``t_learner_estimate``) come from
here. ``tests/python/test_r_facade.py`` checks that R imports nothing else
and that every ``facade$name(`` R calls exists here.
"""
from __future__ import annotations

import warnings as _warnings

import numpy as _np
import pyarrow as _pa
import pyarrow.types as _pa_types

from rfp import geometry as _geometry
from rfp import settings as _settings
from rfp import simulate as _simulate
from rfp.baselines.balancing.balance import balance as _balance
from rfp.baselines.fixed_effects import fixed_effects as _fixed_effects
from rfp.compare import METHODS as _METHODS
from rfp.compare import compare as _compare
from rfp.diagnostics import residual_icc as _residual_icc
from rfp.effects.estimators import effect as _effect
from rfp.effects.heterogeneity import heterogeneity as _heterogeneity
from rfp.inference.t_test import t_test as _t_test
from rfp.inference.weighted_mean import weighted_att as _weighted_att
from rfp.persist import read as _read
from rfp.persist import write as _write
from rfp.training.fit import fit as _fit
from rfp.tuning.tune import tune as _tune

# ---------------------------------------------------------------------------
# Estimators


def fit(*args, **kwargs):
    """Fit one model by regularized bi-level gradient descent (``rfp.fit``)."""
    return _fit(*args, **kwargs)


def tune(*args, **kwargs):
    """Choose the settings by cross-validation over whole clusters, then refit (``rfp.tune``)."""
    return _tune(*args, **kwargs)


def effect(*args, **kwargs):
    """A treatment effect by DML, AIPW or the T-learner (``rfp.effect``)."""
    return _effect(*args, **kwargs)


def compare(*args, **kwargs):
    """Every effect estimator side by side, as an Arrow-backed table (``rfp.compare``)."""
    return _compare(*args, **kwargs)


def compare_methods() -> list:
    """The names of the estimators ``compare`` knows, in its order."""
    return [str(m) for m in _METHODS]


def heterogeneity(*args, **kwargs):
    """Best linear projection and group effects of the CATE (``rfp.heterogeneity``)."""
    return _heterogeneity(*args, **kwargs)


def balance(*args, **kwargs):
    """Balancing weights for a binary treatment (``rfp.balance``)."""
    return _balance(*args, **kwargs)


def fixed_effects(data, y, treatment, controls=(), fe=(), *, cluster, **kwargs) -> dict:
    """OLS absorbing fixed effects with clustered SEs (``rfp.fixed_effects``): table, vcov, counts."""
    f = _fixed_effects(data, y, treatment, controls, fe, cluster=cluster, **kwargs)
    terms = [str(t) for t in f.terms]
    return {"table": f.tidy(), "terms": terms,
            "vcov": _np.asarray(f.vcov, dtype=float).reshape(len(terms), len(terms)),
            "df": _np.broadcast_to(_np.asarray(f.df, dtype=float), (len(terms),)).copy(),
            "n": int(f.n), "n_clusters": int(f.n_clusters), "K": int(f.K),
            "level": float(f.level), "se_type": str(f.se_type),
            "iterations": int(f.iterations), "converged": bool(f.converged)}


def residual_icc(y, x, cluster) -> float:
    """The intraclass correlation of y after OLS on x (``rfp.diagnostics.residual_icc``)."""
    return float(_residual_icc(y, x, cluster))


def weighted_att(y, d, w, cluster, covariates=None, level=0.95) -> dict:
    """The weighted ATT, its cluster-robust SE and its ``level`` interval (t on G - 1 df)."""
    # covariates: a 2-d array, or a list of columns (stacked here; none: a constant)
    if isinstance(covariates, (list, tuple)):
        covariates = _np.column_stack(covariates) if len(covariates) else None
    level = float(level)
    none = {"estimate": float("nan"), "std.error": float("nan"), "conf.low": float("nan"),
            "conf.high": float("nan"), "level": level}
    w = _np.asarray(w, dtype=float)
    if not _np.all(_np.isfinite(w)):
        return none
    estimate, se = _weighted_att(y, d, w, cluster, covariates)
    estimate, se = float(estimate), float(se)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    df = len(_np.unique(_np.asarray(cluster))) - 1
    if df > 0:
        test = _t_test(estimate, se, df, level)
        low, high = float(test.ci_low), float(test.ci_high)
    else:
        low = high = float("nan")
    return {"estimate": estimate, "std.error": se, "conf.low": low, "conf.high": high,
            "level": level}


def t_learner_tau(mu0, mu1, data):
    """tau(x) = mu1(x) - mu0(x) on the rows of ``data`` (a dict of columns), as NumPy."""
    return (_np.asarray(mu1.predict(data, as_numpy=True), dtype=float)
            - _np.asarray(mu0.predict(data, as_numpy=True), dtype=float))


def t_learner_estimate(mu0, mu1, data, d, estimand="ATE", weights=None) -> dict:
    """The T-learner's tau(x) on the rows and its plug-in (case-weighted) mean over the estimand's rows."""
    tau = t_learner_tau(mu0, mu1, data)
    rows = _np.asarray(d) == 1 if estimand == "ATT" else _np.ones(len(tau), dtype=bool)
    if weights is None:
        estimate = float(_np.mean(tau[rows]))
    else:
        w = _np.asarray(weights, dtype=float)[rows]
        estimate = float(_np.sum(tau[rows] * w) / _np.sum(w))
    return {"tau": tau, "estimate": estimate, "n": int(len(tau))}


# ---------------------------------------------------------------------------
# Settings


def validate_settings(settings: dict, context: str) -> dict:
    """Check the settings of one entry point (``rfp.settings.validate``); the checked values."""
    return _settings.validate(settings, context)


def case_weight_values(values, name: str = "weights"):
    """Check case weights (``rfp.settings.case_weight_values``); the checked values."""
    return _settings.case_weight_values(values, name)


# ---------------------------------------------------------------------------
# Persistence


def save_model(model, path: str, extra: dict | None = None) -> None:
    """Write a fitted model (and R's ``extra`` design) to ``path`` (``rfp.persist.save``)."""
    _write.save(model, path, extra=extra)


def load_model(path: str):
    """Read a fitted model written by ``save_model`` or ``model.save`` (``rfp.persist.load``)."""
    return _read.load(path)


def load_model_with_extra(path: str):
    """Read a fitted model and the ``extra`` saved with it: (model, extra or None)."""
    return _read.load_with_extra(path)


# ---------------------------------------------------------------------------
# Simulations and geometry

SIMULATIONS = ("tragic_triad", "clustered_means", "cluster_trial")


def simulate(design: str, **kwargs):
    """One of the package's simulated designs (``rfp.simulate.<design>``): data and settings."""
    if design not in SIMULATIONS:
        raise ValueError(f"unknown design {design!r}; known: {', '.join(SIMULATIONS)}")
    return getattr(_simulate, design)(**kwargs)


def dimension_study(**kwargs):
    """How clustered samples fill space as the dimension grows, as an Arrow table (``rfp.geometry``)."""
    return _pa.table(_geometry.dimension_study(**kwargs))


# ---------------------------------------------------------------------------
# Moving numbers, labels and warnings across the R boundary


def from_buffer(data, dtype: str, shape=None):
    """A NumPy array from little-endian bytes (``numpy.frombuffer``), reshaped when ``shape`` is given."""
    out = _np.frombuffer(data, dtype=dtype)
    return out if shape is None else out.reshape(tuple(int(s) for s in shape))


def float64_bytes(a) -> bytearray:
    """An array (or anything ``numpy.asarray`` takes) as little-endian float64 bytes."""
    return bytearray(_np.ascontiguousarray(a, dtype="<f8").tobytes())


def column_stack(columns):
    """The columns (1-d arrays) side by side as a 2-d array (``numpy.column_stack``)."""
    return _np.column_stack(list(columns))


def arrow_kinds(table) -> dict:
    """Each column's name and kind ("floating", "integer" without nulls, "boolean", "other")."""
    names, kinds = [], []
    for name in table.column_names:
        column = table.column(name)
        t = column.type
        if _pa_types.is_floating(t):
            kind = "floating"
        elif _pa_types.is_integer(t) and column.null_count == 0:
            kind = "integer"
        elif _pa_types.is_boolean(t):
            kind = "boolean"
        else:
            kind = "other"
        names.append(str(name))
        kinds.append(kind)
    return {"names": names, "kinds": kinds}


def arrow_column(table, name: str, kind: str):
    """One column of an Arrow table: NumPy for "floating"/"integer", else a list (nulls as None)."""
    column = table.column(name)
    if kind in ("floating", "integer"):
        return column.to_numpy()
    return column.to_pylist()


def plain_scalars(d) -> dict:
    """A dict of scalars as plain Python (float, bool, str; a list of numbers as floats)."""
    return {str(k): ([float(u) for u in v] if isinstance(v, (list, tuple)) and
                     all(hasattr(u, "__float__") for u in v)
                     else bool(v) if isinstance(v, bool) or type(v).__name__ == "bool_"
                     else float(v) if hasattr(v, "__float__") and not isinstance(v, str)
                     else str(v))
            for k, v in d.items()}


def keys(d) -> list:
    """The keys of a dict, as a list of str."""
    return [str(k) for k in d.keys()]


def to_str(x) -> str:
    """``str(x)``."""
    return str(x)


def call_with_warnings(f, *args, **kwargs):
    """``f(*args, **kwargs)`` recording warnings (UserWarnings always): (value, [dict(category, module, message)])."""
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always", UserWarning)
        value = f(*args, **kwargs)
    recorded = [{"category": str(w.category.__name__), "module": str(w.category.__module__),
                 "message": str(w.message)} for w in caught]
    return value, recorded
