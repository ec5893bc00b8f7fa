"""Fit the method: the data read, scaled and laid out by cluster, then
R_k minimised (``train``) or, for the linear model under the squared loss,
solved directly (``core.quadratic``)."""
from __future__ import annotations

import jax
import numpy as np
import pyarrow as pa

from rfp import data as data_mod
from rfp import settings as settings_mod
from rfp.core import quadratic
from rfp.core.bilevel import Objective, observation_weights
from rfp.core.cache import release_if_crowded
from rfp.core.models import as_model, is_text_input
from rfp.core.text import TextEncoder
from rfp.training.fitted import FittedModel, _model_options
from rfp.training.train import History, train

DEFAULTS = settings_mod.DEFAULTS  # the settings and their checks live in settings.py


def _config(overrides) -> dict:
    """DEFAULTS updated by the user's settings, checked (settings.validate)."""
    config = {**DEFAULTS, **settings_mod.validate(overrides, "fit")}
    from rfp.core.devices import choose
    choose(config["devices"])   # more devices than JAX sees: an error naming the setting
    if not isinstance(config["model"], str):
        config["hidden"] = None
    return config


def _design(x, y, cluster, model, config, scale):
    """What fit and tune share: checks, cluster codes, scaling (x standardised,
    y too for the squared loss) and the model's (init, apply)."""
    y = np.asarray(y, dtype=float)
    leaves = jax.tree.leaves(x)
    if not leaves or any(np.shape(a)[0] != len(y) for a in leaves):
        raise ValueError(f"x must have {len(y)} rows (one per outcome), like y and cluster")
    if np.shape(cluster) != y.shape:
        raise ValueError(f"cluster must have {len(y)} entries, got shape {np.shape(cluster)}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"y has {int((~np.isfinite(y)).sum())} missing or infinite value(s)")
    data_mod.check_magnitudes(y, "y", "outcome")
    if isinstance(config["weights"], str):
        raise ValueError(f"weights = {config['weights']!r} names a column, but fit_arrays takes "
                         f"the case weights themselves (one number per observation)")
    if config["weights"] is not None and np.shape(config["weights"]) != y.shape:
        raise ValueError(f"weights must be one case weight per observation ({len(y)}), got "
                         f"{np.size(config['weights'])} number(s)")
    codes, labels = data_mod.encode_clusters(pa.chunked_array([pa.array(np.asarray(cluster))]))
    if len(labels) < 2:
        raise ValueError("the method needs at least two clusters")
    if config["weights"] is not None:
        data_mod.check_weighted_clusters(codes, labels, settings_mod.case_weight_values(
            config["weights"]), "the method")
    if config["loss"] == "logistic" and not np.all((y == 0) | (y == 1)):
        raise ValueError("the logistic loss needs an outcome coded 0/1")

    text = config["model"] == "text"
    if text:
        tokens = text_inputs(x, config["vocab_size"])
        numeric = x["x"]
    else:
        numeric = x
    is_matrix = text or isinstance(x, np.ndarray) or not isinstance(model, (tuple, list))
    if is_matrix:
        numeric = finite_inputs(numeric)
    scaler = None
    if is_matrix and scale:
        numeric = np.asarray(numeric, dtype=float)
        if numeric.ndim == 1:
            numeric = numeric[:, None]
        for j in range(numeric.shape[1]):
            data_mod.check_magnitudes(numeric[:, j], f"x[:, {j}]", "control")
        scaler = data_mod.Scaler.fit(numeric, y, scale_y=config["loss"] == "squared",
                                     w=config["weights"])
        numeric, y_fit = scaler.x(numeric), scaler.y(y)
    else:
        y_fit = y
    x = {"x": numeric.reshape(len(y), -1), **tokens} if text else numeric
    return x, y_fit, codes, labels, scaler


def text_inputs(x, vocab_size: int) -> dict:
    """The token part of a text model's input (``text.TextEncoder.encode``),
    checked: whole-number ids in [0, vocab_size) and a mask of the same shape."""
    if not is_text_input(x):
        raise ValueError("model 'text' takes x = {'tokens': ids, 'mask': 0/1, 'x': numeric "
                         "controls} (rfp.core.text.TextEncoder.encode gives tokens and mask); "
                         "fit and tune build it from text= columns")
    tokens, mask = np.asarray(x["tokens"]), np.asarray(x["mask"], dtype=float)
    if tokens.dtype.kind not in "iu" or tokens.ndim != 3 or mask.shape != tokens.shape:
        raise ValueError(f"x['tokens'] must be whole numbers of shape (rows, text columns, "
                         f"tokens) with x['mask'] of the same shape; got {tokens.dtype} "
                         f"{tokens.shape} and {mask.shape}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(f"x['tokens'] holds ids outside [0, vocab_size = {vocab_size}): raise "
                         f"vocab_size to the vocabulary's size")
    return {"tokens": tokens.astype(np.int32), "mask": mask}


def finite_inputs(x) -> np.ndarray:
    """A matrix x as floats, with an error naming the column (counting from
    0, as x[:, j]) and the first row (from 1) of a missing or infinite value,
    as ``fit`` names its column; never a NaN objective later."""
    try:
        x = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("x must be numbers (a numeric matrix, one row per observation); "
                         "convert non-numeric columns (e.g. to dummies) first") from None
    cols = x[:, None] if x.ndim == 1 else x.reshape(len(x), -1)
    bad = ~np.isfinite(cols)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        rows = bad[:, j]
        raise ValueError(f"x[:, {j}] has {int(rows.sum())} missing value(s) (NaN or inf), first "
                         f"at row {int(np.argmax(rows)) + 1} ({int(bad.any(axis=1).sum())} row(s) "
                         f"with a missing value in all); fix them or drop those rows before "
                         f"fitting")
    return x


def _model_for(config, model):
    """(init, apply) of a configuration: a named model, or the user's pair."""
    if isinstance(config["model"], str) and config["model"] != "user":
        return as_model(config["model"], **_model_options(config))
    return as_model(model)


def fit_arrays(x, y, cluster, model="mlp", progress=None, scale=True, **settings) -> FittedModel:
    """Fit f(theta, x) on arrays (the engine behind ``fit``).

    Parameters
    ----------
    x : array (n, p) or pytree
        Inputs; any pytree with a leading observation axis for a user's
        (init, apply) model.
    y : array (n,)
        Outcome (0/1 for ``loss="logistic"``).
    cluster : array (n,)
        Cluster labels (any type); at least two clusters.
    model : str or (init, apply) pair
        "linear", "mlp" (default), "neural_ode" or a user's pair of JAX
        functions.
    progress : bool, callable or None
        A progress bar (None: when the session is interactive), or a
        callback(step, total, train_loss, validation_loss).
    scale : bool
        Standardise a matrix x (and y for the squared loss) before fitting;
        predictions are on the original scale.
    **settings
        As in ``fit`` (``DEFAULTS`` lists them); ``weights`` here are the
        case weights themselves (one number >= 0 per observation), not a
        column name.

    Returns
    -------
    FittedModel
    """
    release_if_crowded()   # a long session: free compiled programs (core.cache)
    config = _config({"model": model, **settings})
    progress = settings_mod.check("progress", progress)
    x, y_fit, codes, labels, scaler = _design(x, y, cluster, model, config, scale)
    m = _model_for(config, model)
    objective = Objective(m.apply, config["loss"], config["inner_steps"], float(config["inner_lr"]),
                          bool(config["first_order"]), float(config["penalty"]))
    w = observation_weights(codes, config["weights"], config["equal_clusters"])
    result = train(objective, m.init, x, y_fit, codes, w, alpha=float(config["alpha"]),
                   learning_rate=float(config["learning_rate"]), clip_norm=config["clip_norm"],
                   schedule=config["schedule"],
                   max_steps=int(config["max_steps"]), patience=config["patience"],
                   min_steps=int(config["min_steps"]),
                   eval_every=int(config["eval_every"]), validation_share=float(config["validation_share"]),
                   seed=int(config["seed"]), progress=progress, dtype=config["dtype"],
                   batch_clusters=config["batch_clusters"], devices=config["devices"])
    if not isinstance(config["model"], str):
        config["model"] = "user"
    return FittedModel(config, result.params, None, scaler, result.history, len(y), labels,
                       labels[result.train_clusters], labels[result.validation_clusters],
                       result.best_step, result.stopped_early,
                       user_model=None if isinstance(model, str) else model)


def solve_arrays(x, y, cluster, progress=None, scale=True, **settings) -> FittedModel:
    """A linear model under the squared loss (``quadratic.is_quadratic``)
    fitted by solving for the minimiser of R_k over all clusters directly
    (``quadratic.py``: R_k is a quadratic in theta) instead of by gradient
    descent: no learning rate, step budget, seed or held-out clusters.
    Arguments as in ``fit_arrays`` (a callable ``progress`` hears one step of
    one); used for linear nuisances (``effects``)."""
    config = _config({"model": "linear", **settings})
    progress = settings_mod.check("progress", progress)
    if not quadratic.is_quadratic(config):
        raise ValueError("solve_arrays takes a linear model under the squared loss, second "
                         "order and without a forward penalty: use fit_arrays")
    x, y_fit, codes, labels, scaler = _design(x, y, cluster, "linear", config, scale)
    w = observation_weights(codes, config["weights"], config["equal_clusters"])
    params = quadratic.minimise(x, y_fit, codes, w, float(config["alpha"]),
                                int(config["inner_steps"]), float(config["inner_lr"]))
    if callable(progress):
        progress(1, 1, float("nan"), float("nan"))
    return FittedModel(config, params, None, scaler, History(), len(y), labels, labels,
                       labels[:0], 0, False)


def _text_settings(model, settings: dict) -> tuple:
    """With text columns the model is the embedding bag (``models.text_bag``)
    and ``model`` ("mlp" or "linear") names its head."""
    if not isinstance(model, str) or model not in ("mlp", "linear", "text"):
        raise ValueError(f"with text columns, model must be 'mlp' (default) or 'linear', the "
                         f"model applied to the pooled token embeddings; got {model!r}")
    if model != "text" and "head" not in settings:
        settings = dict(settings, head=model)
    grid = settings.get("grid")
    grids = grid if isinstance(grid, list) else [grid] if grid else []
    if any("model" in g for g in grids):
        raise ValueError("with text columns, tune the head with grid['head'] (values 'mlp', "
                         "'linear'), not grid['model']")
    return "text", settings


def encode_texts(texts: dict, settings: dict, cluster) -> tuple:
    """The vocabulary of ``texts`` (column name -> strings; at most the
    settings' ``vocab_size`` words, each in at least ``word_clusters`` of the
    rows' clusters, ``max_tokens`` tokens per text) and their token ids and
    masks: (``text.TextEncoder``, {"tokens", "mask"})."""
    get = lambda k: settings.get(k, DEFAULTS[k])   # noqa: E731
    encoder = TextEncoder.fit(texts, get("vocab_size"), get("max_tokens"), cluster,
                              get("word_clusters"))
    return encoder, encoder.encode(texts)


def _settings_of(config: dict) -> dict:
    """A configuration's settings that ``_config`` takes (not the model's own)."""
    return {k: v for k, v in config.items() if k in DEFAULTS and k not in ("hidden",)}


def fit(data, y: str, x=None, cluster: str = None, *, text=None, na_action: str = "fail",
        progress=None, **settings) -> FittedModel:
    """Fit f(theta, x) by regularized bi-level gradient descent (the R_k
    objective of docs/DESIGN.md: alpha times the pooled loss plus 1 − alpha
    times the loss after ``inner_steps`` per-cluster adaptation steps).

    Parameters
    ----------
    data : Arrow-compatible table (pyarrow, pandas, polars, dict of arrays)
    y : str
        Outcome column (numeric; 0/1 for ``loss="logistic"``).
    x : list of str, str, or "all"
        Control columns (numeric). Required unless ``text`` is given:
        ``x="all"`` takes every column other than ``y``, ``cluster`` and
        the text columns.
    cluster : str
        Cluster column (any type); used in training only.
    text : str or list of str, optional
        Text columns (strings).  A vocabulary of at most ``vocab_size``
        words, each found in at least ``word_clusters`` clusters (default 2:
        a word of one cluster only identifies it), is built from their rows
        (``text.py``); each
        text becomes at most ``max_tokens`` token ids, and the model is the
        embedding bag of ``models.text_bag``: each column's token embeddings
        (``embedding_dim`` numbers per token) averaged, joined with the
        numeric controls, then ``model`` ("mlp" or "linear") as its head.
        Words the vocabulary cannot spell map to an unknown token.
    na_action : {"fail", "omit"}
        "fail" rejects missing values naming the column; "omit" drops those
        rows with a warning.
    progress : bool, callable or None
        A progress bar (None: when the session is interactive), or a
        callback(step, total, train_loss, validation_loss).
    **settings
        model ("linear", "mlp", "neural_ode" or an (init, apply) pair),
        hidden (layer widths), activation, alpha (weight of the pooled loss,
        in [0, 1]), inner_steps, inner_lr, first_order, loss ("squared" or
        "logistic"), weights (case weights: the name of a column or one
        number >= 0 per row; w_i multiplies row i's loss in R_k and in the
        inner step's cluster mean, so a weight of 2 counts the row twice;
        default None, all 1), equal_clusters (True: each cluster weighs the
        same, w_i divided by its cluster's total; default False;
        ``weights="obs"`` / ``"cluster"``, the former spelling of False /
        True, still work for one release with a FutureWarning), penalty
        (lambda), learning_rate,
        clip_norm, schedule ("constant" or "cosine"), max_steps, patience
        (early stopping on the held-out clusters; None to switch off),
        min_steps (no step before it is kept by early stopping; default 50),
        eval_every, validation_share, seed; for speed dtype ("float32"
        trains in single precision, results stay float64), batch_clusters
        (B clusters per outer step, without replacement within an epoch)
        and devices (a whole number or "all": clusters split across a
        jax.sharding mesh); ``DEFAULTS`` has their values.

    Returns
    -------
    FittedModel
        ``predict(data)`` for new rows; ``history`` the training and
        held-out losses.

    Raises
    ------
    ValueError
        A missing or non-numeric column, missing values, fewer than two
        clusters, or a setting out of range (each named).
    TypeError
        An unknown setting.
    """
    settings = settings_mod.validate(settings, "fit", data=data)  # before the data: cheap, and first
    return _from_table(fit_arrays, data, y, x, cluster, na_action, progress, settings, text)


def _from_table(fit_fn, data, y, x, cluster, na_action, progress, settings, text=None):
    """fit / tune on a table: columns in, labels and names kept on the model."""
    if cluster is None:
        raise ValueError("cluster= is required: name the column that identifies clusters")
    prepared = data_mod.prepare(data, y, x, cluster, na_action, weights=settings.get("weights"),
                                text=text)
    if prepared.weights is not None:
        settings = dict(settings, weights=prepared.weights)
    model = settings.pop("model", "mlp")
    inputs, encoder = prepared.x, None
    if prepared.texts:
        model, settings = _text_settings(model, settings)
        encoder, tokens = encode_texts(prepared.texts, settings, prepared.cluster)
        inputs = {"x": prepared.x, **tokens}
    elif model == "text":
        raise ValueError("model = 'text' needs text columns: name them in text=")
    fitted = fit_fn(inputs, prepared.y, prepared.cluster, model=model,
                    progress=progress, **settings)
    if fitted.config["model"] == "text":
        fitted.text = encoder
    fitted.x_names = prepared.x_names
    fitted.cluster_labels = prepared.labels
    fitted.train_clusters = prepared.labels[fitted.train_clusters.astype(int)]
    fitted.validation_clusters = prepared.labels[fitted.validation_clusters.astype(int)]
    fitted.n_dropped = prepared.n_dropped
    return fitted
