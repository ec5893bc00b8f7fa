"""Tune: candidates from the mean to the network scored by cross-validation
across whole clusters (``tuning.crossval``), the chosen one refitted on all
clusters (a linear or bag-of-words winner directly)."""
from __future__ import annotations

import numpy as np

from rfp import settings as settings_mod
from rfp.core import quadratic
from rfp.core.bilevel import Objective, observation_weights
from rfp.core.cache import release_if_crowded
from rfp.training.fit import _config, _design, _from_table, _model_for, _settings_of, fit_arrays
from rfp.training.fitted import FittedModel
from rfp.training.train import History
from rfp.tuning import bag_of_words, simple_candidates
from rfp.tuning.selection import MARGIN

# K, the folds of whole clusters. 3 folds passed the simulated designs at about
# half the time but lost to the linear model on real data (Exam, z 3.0), so 5
# stays (validation/TUNING.md, "Speed variants")
FOLDS = 5

# tune: a shorter run per model (each configuration x fold trains at once) and
# patience on the cross-validated curve.
TUNE_DEFAULTS = dict(max_steps=1000, patience=50, min_steps=0, eval_every=5)


def tune_arrays(x, y, cluster, model="mlp", grid=None, folds: int = FOLDS, one_se: bool = False,
                progress=None, scale=True, cv_dtype: str = "float32", ensemble: int = 1,
                margin: float = MARGIN, simple: bool = True, **settings) -> FittedModel:
    """``tune`` on arrays (see ``fit_arrays`` for x, y and cluster)."""
    release_if_crowded()   # a long session: free compiled programs (core.cache)
    from rfp.tuning.crossval import cross_validate, fold_per_cluster, train_members
    from rfp.tuning.cv_result import check_choice
    from rfp.tuning.grid import expand_grid
    checked = settings_mod.validate({"folds": folds, "one_se": one_se, "cv_dtype": cv_dtype,
                                     "ensemble": ensemble, "margin": margin, "simple": simple},
                                    "tune")
    folds, one_se, cv_dtype = checked["folds"], checked["one_se"], checked["cv_dtype"]
    ensemble, margin, simple = checked["ensemble"], checked["margin"], checked["simple"]
    progress = settings_mod.check("progress", progress)
    settings = {**TUNE_DEFAULTS, **settings}
    base = _config({"model": model, **settings})
    if base["schedule"] != "constant":
        raise ValueError("tune trains with a constant learning rate: leave schedule at 'constant'")
    configs = [_config(c) for c in expand_grid(grid, base)]
    xs, y_fit, codes, labels, scaler = _design(x, y, cluster, model, base, scale)
    w = observation_weights(codes, base["weights"], base["equal_clusters"])
    fold = fold_per_cluster(codes, int(folds), int(base["seed"]))

    # the linear candidates, solved directly on each fold (a matrix x, or the
    # numeric controls beside text columns)
    direct = []
    numeric = xs["x"] if base["model"] == "text" else xs
    simple = simple and isinstance(numeric, np.ndarray)
    if simple and numeric.shape[1]:
        linear = simple_candidates.linear_configs(configs, {**base, "model": "linear"})
        if base["model"] == "linear":   # the grid itself is linear: solve what can be solved
            linear += [c for c in configs if quadratic.is_quadratic(c)]
        linear = list({simple_candidates.linear_key(c): c for c in linear}.values())
        sums = simple_candidates.linear_rows(numeric, y_fit, codes, w, fold, int(folds), linear)
        direct = list(zip(linear, sums))
        solved = {simple_candidates.linear_key(c) for c in linear}
    else:
        solved = set()
    if simple and base["model"] == "text" and base["loss"] == "squared":
        # the bags of words: ridge regressions on word frequencies, solved directly
        words = [{**base, "model": "words", "alpha": 1.0, "ridge": lam}
                 for lam in bag_of_words.RIDGE]
        direct += list(zip(words, bag_of_words.rows(xs, y_fit, codes, w, fold, int(folds))))
    if solved:
        configs = [c for c in configs if c["model"] != "linear" or (
            simple_candidates.linear_key(c) not in solved and float(c["alpha"]) < 1.0)]

    def objective_for(c):
        return Objective(_model_for(c, model).apply, c["loss"], c["inner_steps"], 0.0,
                         bool(c["first_order"]), float(c["penalty"]))

    cv = cross_validate(objective_for, lambda c: _model_for(c, model).init, xs, y_fit, codes, w,
                        configs, folds=int(folds), seed=int(base["seed"]), fold=fold,
                        direct=direct, max_steps=int(base["max_steps"]),
                        eval_every=int(base["eval_every"]),
                        patience=base["patience"], min_steps=int(base["min_steps"]),
                        clip_norm=base["clip_norm"], loss=base["loss"], one_se=bool(one_se),
                        margin=float(margin), simple=bool(simple),
                        progress=progress, dtype=cv_dtype)
    check_choice(cv)
    chosen = cv.chosen_config
    if chosen["model"] == "words":
        fitted = _words_refit(xs, y_fit, w, chosen, base, len(y), labels, scaler)
    elif chosen["model"] in ("constant", "linear") and (cv.chose_mean or cv.chosen_step == 0):
        # solved directly on all clusters: the constant, or a linear model
        fitted = _direct_refit(numeric, y_fit, codes, w, chosen, base, len(y), labels, scaler)
    else:
        chosen = {k: v for k, v in chosen.items() if k != "model"}
        chosen.update(max_steps=cv.chosen_step, patience=None)
        fitted = fit_arrays(x, y, cluster, model=model, progress=progress, scale=scale, **chosen)
        if ensemble > 1:
            c = fitted.config
            fitted.members = train_members(
                objective_for(c), _model_for(c, model).init, xs, y_fit, codes, w,
                {"alpha": c["alpha"], "inner_lr": 0.0 if float(c["alpha"]) == 1.0 else c["inner_lr"],
                 "learning_rate": c["learning_rate"]}, cv.chosen_step,
                [int(c["seed"]) + i for i in range(ensemble)], clip_norm=c["clip_norm"],
                eval_every=int(c["eval_every"]), dtype=c["dtype"])
    fitted.cv = cv
    return fitted


def _direct_refit(xs, y_fit, codes, w, chosen: dict, base: dict, n_obs, labels, scaler):
    """The chosen constant or linear candidate solved on all clusters, as a
    linear model (the constant: zero slopes), predicting like any fit."""
    p = xs.shape[1]
    if chosen["model"] == "constant":
        params = simple_candidates.constant_params(y_fit, w, base["loss"], p)
        config = _config({**_settings_of(base), "model": "linear", "alpha": 1.0})
    else:
        params = simple_candidates.solve(xs, y_fit, codes, w, chosen)
        config = _config({**_settings_of(base), **_settings_of(chosen), "model": "linear"})
    params = {"b": np.asarray(params["b"], dtype=float), "w": np.asarray(params["w"], dtype=float)}
    return FittedModel(config, params, None, scaler, History(), n_obs, labels, labels,
                       labels[:0], 0, False)


def _words_refit(xs, y_fit, w, chosen: dict, base: dict, n_obs, labels, scaler):
    """The chosen bag of words solved on all clusters, as the text model
    with one number per word and a linear head (``bag_of_words``)."""
    config = _config({**_settings_of(base), "model": "text", "head": "linear",
                      "embedding_dim": 1, "alpha": 1.0})
    params = bag_of_words.text_params(xs, y_fit, w, float(chosen["ridge"]),
                                      int(config["vocab_size"]))
    return FittedModel(config, params, None, scaler, History(), n_obs, labels, labels,
                       labels[:0], 0, False)


def tune(data, y: str, x=None, cluster: str = None, *, text=None, grid=None, folds: int = FOLDS,
         one_se: bool = False, na_action: str = "fail", progress=None, **settings) -> FittedModel:
    """Choose among candidates from simple to flexible by K-fold
    cross-validation across whole clusters, then refit the chosen one on all
    clusters.

    The candidates (``crossval.py``): the training mean; the linear model at
    alpha = 1 and at the grid's (alpha, k, eta), solved directly on each
    fold (its R_k is a quadratic, eq. 18-20); the network at each grid
    configuration, every configuration x fold trained at once in one
    compiled program, its number of outer steps chosen on the fold-averaged
    held-out curve.  All are scored on the same held-out clusters, and the
    choice is the simplest candidate whose loss is within ``margin`` SEs of
    the best, the SE being that of the paired per-cluster difference
    (``selection.py``).

    Parameters
    ----------
    data, y, x, cluster, text, na_action, progress
        As in ``fit``.  With text columns the candidates are the mean, the
        linear model on the numeric controls (if any), four bags of words
        (ridge regressions on word frequencies and the numeric controls,
        ``bag_of_words.RIDGE``; squared loss) and the text model at each
        configuration.
    grid : dict of lists, list of such dicts, or None
        Candidate values: alpha, inner_lr, learning_rate (traced: one program
        serves all their values) and inner_steps, hidden, model, activation,
        first_order, penalty, width (a program per combination). Default
        ``rfp.tuning.grid.DEFAULT_GRID``: alpha in {1 (ERM), 0.5, 0 (MAML)} x
        inner_lr 0.1.
    folds : int
        K, the number of folds of whole clusters (default 5, ``FOLDS``).
    one_se : bool
        When a network is chosen, take the fewest steps whose cross-validated
        loss is within one standard error (across folds) of its best.
    margin : float
        Paired SEs by which a more flexible candidate must beat a simpler one
        to be chosen (default 0: the lowest held-out loss; chosen on
        development seeds, ``validation/TUNING.md``, version 3). 1 is the
        one-standard-error rule.
    simple : bool
        Include the mean and the linear candidates (default True).  False:
        the grid's network configurations alone (the mean is still shown).
    cv_dtype : {"float32", "float64"}
        Precision of the cross-validation runs (default float32: 2-3x
        faster on a CPU; its rounding is far below the SE across folds).
        The refit on all clusters uses ``dtype`` (float64 by default).
    ensemble : int
        When a network is chosen, refit this many at the chosen configuration
        and step, from random starts ``seed, seed + 1, ...`` (in one compiled
        program), and predict with the mean of their predictions (default 1).
        ``validation/ENSEMBLE.md`` measures what it does to the spread
        across seeds.
    **settings
        Other settings, as in ``fit``, held fixed; max_steps (default 1000),
        patience (default 50, on each configuration's fold-averaged curve)
        and eval_every (default 5) bound every configuration's run; from
        step 100 a configuration more than 2 paired SEs behind the leading
        one stops (racing).

    Returns
    -------
    FittedModel
        Refitted on all clusters with the chosen candidate (a linear model
        with zero slopes when it is the mean); ``model.cv`` holds the table
        (print it, ``to_pandas()``, ``plot()``).

    Warns
    -----
    rfp.alerts.NoBetterThanMeanWarning
        The mean was chosen: no candidate beats it by more than the margin.
    rfp.alerts.StoppedAtOnceWarning
        The chosen network is best at its first evaluation (it overfits
        within a few steps).
    rfp.alerts.NotConvergedWarning
        The chosen network was still improving at max_steps.
    """
    settings = settings_mod.validate(dict(settings, folds=folds, one_se=one_se), "tune",
                                   data=data)
    return _from_table(tune_arrays, data, y, x, cluster, na_action, progress,
                       dict(settings, grid=grid), text)
