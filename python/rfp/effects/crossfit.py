"""Cross-fitted nuisances: each row's prediction from a fit on the other
folds' clusters, by the method or the nuisance ladder (``nuisance``)."""
from __future__ import annotations

import warnings

import jax
import numpy as np

from rfp import alerts
from rfp.core import closed_form, quadratic
from rfp.core.bilevel import observation_weights
from rfp.core.models import is_text_input
from rfp.effects import nuisance as nz_mod
from rfp.effects.folds import check_repeats, cluster_folds, default_repeats, split_seed
from rfp.effects.reading import EffectData
from rfp.progress import over_fits
from rfp.settings import LOSS_PER_NUISANCE
from rfp.training.fit import DEFAULTS, fit_arrays, solve_arrays
from rfp.training.fitted import FittedModel


def split_nuisances(ed: EffectData, folds: int, seed: int, repeats, need, fit_settings,
                    nuisance: str = "select"):
    """For each fold split s (repeated cross-fitting): yields (s, fold, the
    cross-fitted nuisances ``need``), every fit counted on one progress bar.
    ``repeats`` None: ``default_repeats``."""
    repeats = default_repeats(ed.n_clusters) if repeats is None else check_repeats(repeats)
    with over_fits(fit_settings, len(need) * int(folds) * repeats) as settings:
        for s in range(repeats):
            seed_s = split_seed(seed, s)
            fold = cluster_folds(ed.cluster, folds, seed_s, ed.d)
            yield s, fold, nuisances(ed, fold, need, seed=seed_s, nuisance=nuisance, **settings)


def _settings(fit_settings: dict) -> dict:
    if "loss" in fit_settings:
        raise TypeError(LOSS_PER_NUISANCE)
    return {"progress": False, **fit_settings}


def rows_of(settings: dict, rows, n: int) -> dict:
    """The settings of a fit on some of the rows: per-observation ``weights``
    (an array of n numbers) cut to those rows."""
    w = settings.get("weights")
    if w is None:
        return settings
    w = np.asarray(w, dtype=float)
    if w.shape != (n,):
        raise ValueError(f"weights must be one case weight per observation ({n}), got "
                         f"{w.size} number(s)")
    return {**settings, "weights": w[rows]}


def fit_converged(model: FittedModel, rel_tol: float = 1e-3) -> bool:
    """A fit has converged when early stopping ended it (its held-out loss
    stopped improving) or its training objective changed by less than
    ``rel_tol`` (relative) over the last tenth of its steps."""
    if isinstance(model, closed_form.ClosedFormFit):
        return model.converged
    if model.stopped_early:
        return True
    train = np.asarray(model.history.train, dtype=float)
    if train.size < 2:
        return True
    back = max(1, train.size // 10)
    prev = train[-1 - back]
    return bool(abs(train[-1] - prev) <= rel_tol * max(abs(prev), 1e-12))


def numeric_controls(x) -> np.ndarray:
    """The numeric part of the inputs: x itself, or x["x"] of a text pytree."""
    return x["x"] if is_text_input(x) else x


def take_rows(x, rows):
    """Some rows of the inputs (a matrix or a pytree with a leading row axis)."""
    return jax.tree.map(lambda a: a[rows], x)


def crossfit(x, target, cluster, fold, loss="squared", rows=None, seed=0, what="nuisance",
             rung="method", **fit_settings):
    """Out-of-fold predictions: for each fold k, fit ``target`` on the rows
    outside fold k (restricted to ``rows`` if given, e.g. one treatment arm)
    and predict every row in fold k. ``rung``: "method" (``rfp.fit_arrays``
    with the settings; solved in closed form when they describe a plain
    linear model, ``closed_form.is_closed_form``, and directly when a linear
    model's R_k is quadratic, ``quadratic.is_quadratic``), "linear" or "constant"
    (``closed_form.linear_fit`` / ``constant_fit``). ``x``: a matrix, or the
    text pytree (``EffectData.inputs``), which the method's text model takes
    whole and the closed-form rungs by its numeric controls only. Returns
    (predictions, fitted models)."""
    n = len(target)
    rows = np.ones(n, dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    pred = np.full(n, np.nan)
    models = []
    settings = _settings(fit_settings)
    closed = rung != "method" or closed_form.is_closed_form({**DEFAULTS, **settings})
    # a linear model under the squared loss: R_k is quadratic, solved directly
    direct = not closed and quadratic.is_quadratic({**DEFAULTS, **settings, "loss": loss})
    if closed or direct:
        x = numeric_controls(x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", alerts.RFPWarning)
        for k in np.unique(fold):
            train = (fold != k) & rows
            test = fold == k
            if np.unique(cluster[train]).size < 2:
                raise ValueError(f"cross-fitting {what}: the training rows outside fold {k} come "
                                 f"from {np.unique(cluster[train]).size} cluster(s); the method "
                                 f"needs at least two (use fewer folds or more clusters)")
            train_settings = rows_of(settings, train, n)
            if closed:
                w = observation_weights(cluster[train], train_settings.get("weights"),
                                        bool(train_settings.get("equal_clusters", False)))
                if rung == "constant":
                    model = closed_form.constant_fit(target[train], w, loss)
                elif rung == "ridge":
                    model = closed_form.ridge_fit(x[train], target[train])
                else:
                    model = closed_form.linear_fit(x[train], target[train], w, loss)
            elif direct:
                model = solve_arrays(x[train], target[train], cluster[train], **train_settings)
            else:
                model = fit_arrays(take_rows(x, train), target[train], cluster[train], loss=loss,
                                   seed=int(seed) + int(k), **train_settings)
            pred[test] = model.predict_arrays(take_rows(x, test))
            models.append(model)
    summarise_fit_warnings(caught, what, len(models))
    return pred, models


def summarise_fit_warnings(caught, what: str, n_fits: int) -> None:
    """One warning per kind (``alerts``) over the cross-fitting fits of a
    nuisance, naming it and counting the fits; other warnings pass on."""
    kinds = {}
    for w in caught:
        if issubclass(w.category, alerts.RFPWarning):
            kinds.setdefault(w.category, []).append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for category, messages in kinds.items():
        warnings.warn(f"{what}: {len(messages)} of {n_fits} cross-fitting fit(s): {messages[0]}",
                      category, stacklevel=4)


def _one_nuisance(x, target, cluster, fold, loss, rows, seed, what, nuisance, fit_settings):
    """(predictions, models, chosen rung, selection table) of one nuisance:
    ``nuisance`` "select" runs the ladder (``effects.nuisance``), otherwise the
    named rung."""
    if nuisance != "select":
        pred, models = crossfit(x, target, cluster, fold, loss, rows, seed, what, nuisance,
                                **fit_settings)
        return pred, models, nuisance, {}
    settings = {**DEFAULTS, **_settings(fit_settings)}
    # the closed-form rungs take the numeric controls; the method the text too
    p = numeric_controls(x).shape[1]
    ridge = loss == "logistic" and p and settings.get("weights") is None
    rungs = ["constant"] + (["ridge"] if ridge else []) + (["linear"] if p else [])
    if (p or is_text_input(x)) and not (settings.get("model") == "linear"
                                        and closed_form.is_closed_form(settings)):
        rungs.append("method")
    fits, losses = {}, {}
    use = np.ones(len(target), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    caught = {}
    for rung in rungs:
        with warnings.catch_warnings(record=True) as caught[rung]:
            warnings.simplefilter("always")
            fits[rung] = crossfit(x, target, cluster, fold, loss, rows, seed, what, rung,
                                  **fit_settings)
        w = settings.get("weights")
        losses[rung] = nz_mod.fold_losses(target[use], fits[rung][0][use], cluster[use], loss,
                                          None if w is None else np.asarray(w)[use])
    w = settings.get("weights")   # each cluster's weight: the rows the losses summed
    size = nz_mod.cluster_totals(None if w is None else np.asarray(w)[use], cluster[use])
    chosen, table = nz_mod.ladder_choice(losses, size)
    for w in caught[chosen]:   # the rungs left behind do not enter the estimate: no warning
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return fits[chosen][0], fits[chosen][1], chosen, table


def nuisances(ed: EffectData, fold: np.ndarray, need=("g", "m"), seed: int = 0,
              nuisance: str = "select", **fit_settings) -> dict:
    """Cross-fitted nuisances by name: g = E[Y|X], m = E[D|X] (logistic for a
    binary D), mu0 / mu1 = E[Y|X, D = 0 / 1]; plus the fitted models, the
    rung chosen for each (``chosen``: "constant", "linear" or "method") and
    the ladder's out-of-fold losses (``selection``)."""
    if nuisance not in nz_mod.NUISANCE_CHOICES:
        raise ValueError(f"nuisance must be one of {list(nz_mod.NUISANCE_CHOICES)}, "
                         f"got {nuisance!r}")
    _settings(fit_settings)
    out, models, chosen, selection = {}, {}, {}, {}
    jobs = []
    if "g" in need:
        jobs.append(("g", ed.y, "squared", None, f"E[{ed.outcome} | X]"))
    if "m" in need:
        jobs.append(("m", ed.d, "logistic" if ed.binary else "squared", None,
                     f"E[{ed.treatment} | X]"))
    for arm in (0, 1):
        if f"mu{arm}" in need:
            jobs.append((f"mu{arm}", ed.y, "squared", ed.d == arm,
                         f"E[{ed.outcome} | X, {ed.treatment} = {arm}]"))
    for name, target, loss, rows, what in jobs:
        out[name], models[name], chosen[name], selection[name] = _one_nuisance(
            ed.inputs, target, ed.cluster, fold, loss, rows, seed, what, nuisance, fit_settings)
    out["models"] = models
    out["chosen"] = chosen
    out["selection"] = selection
    out["converged"] = all(fit_converged(m) for ms in models.values() for m in ms)
    return out
