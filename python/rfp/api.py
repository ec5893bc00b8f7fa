"""The narrow interface: fit and predict (effects and comparisons live in
effects.py and compare.py and are re-exported by the package)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa

from . import data as data_mod
from .bilevel import Objective, observation_weights
from .layout import make_buckets
from .models import as_model, is_text_input
from . import bag_of_words, quadratic, simple_candidates
from . import settings as settings_mod
from .selection import MARGIN
from .text import TextEncoder
from .train import History, train

DEFAULTS = settings_mod.DEFAULTS  # the settings and their checks live in settings.py


# tune: a shorter run per model (each configuration x fold trains at once) and
# patience on the cross-validated curve.
TUNE_DEFAULTS = dict(max_steps=1000, patience=50, min_steps=0, eval_every=5)


def _model_options(config):
    name = config["model"]
    if name == "mlp":
        return {"hidden": tuple(config["hidden"]), "activation": config["activation"]}
    if name == "neural_ode":
        return {k: config[k] for k in ("width", "steps", "activation") if k in config}
    if name == "text":
        return {"head": config["head"], "hidden": tuple(config["hidden"] or DEFAULTS["hidden"]),
                "activation": config["activation"], "embedding_dim": config["embedding_dim"],
                "vocab_size": config["vocab_size"]}
    return {}


def _config(overrides) -> dict:
    """DEFAULTS updated by the user's settings, checked (settings.validate)."""
    config = {**DEFAULTS, **settings_mod.validate(overrides, "fit")}
    from .devices import choose
    choose(config["devices"])   # more devices than JAX sees: an error naming the setting
    if not isinstance(config["model"], str):
        config["hidden"] = None
    return config


@partial(jax.jit, static_argnums=0)
def _forward(apply, params, x):
    """f(theta, x), compiled once per model and input shape."""
    return apply(params, x)[0]


@partial(jax.jit, static_argnums=0)
def _forward_members(apply, members, x):
    """f(theta_s, x) of every member of an ensemble (leading axis)."""
    return jax.vmap(lambda p: apply(p, x)[0])(members)


@dataclass
class FittedModel:
    """A fitted rfp model: parameters theta (NumPy), the scaling, the
    settings and the training history.  ``predict`` uses theta alone."""
    config: dict
    params: object
    x_names: list | None
    scaler: data_mod.Scaler | None
    history: History
    n_obs: int
    cluster_labels: np.ndarray
    train_clusters: np.ndarray
    validation_clusters: np.ndarray
    best_step: int
    stopped_early: bool
    n_dropped: int = 0
    user_model: object = field(default=None, repr=False)
    cv: object = field(default=None, repr=False)   # tune's CVResult, when tuned
    # tune(ensemble = S): S parameter sets stacked on a leading axis (from S
    # random starts); predictions average theirs.  ``params`` is the first.
    members: object = field(default=None, repr=False)
    # text columns (text.TextEncoder): the vocabulary the fit was trained with
    text: object = field(default=None, repr=False)

    @property
    def n_clusters(self) -> int:
        return len(self.cluster_labels)

    def _apply(self):
        if self.user_model is not None:
            return as_model(self.user_model).apply
        return as_model(self.config["model"], **_model_options(self.config)).apply

    def predict_arrays(self, x, type: str = "response") -> np.ndarray:
        """Predictions from inputs already in model form (a matrix, or the
        pytree a user model takes)."""
        if self.scaler is not None and is_text_input(x):
            x = {**x, "x": self.scaler.x(check_columns(x["x"], len(self.scaler.x_mean)))}
        elif self.scaler is not None:
            x = self.scaler.x(check_columns(x, len(self.scaler.x_mean)))
        x = jax.tree.map(jnp.asarray, x)
        if self.members is not None:   # an ensemble: the mean of its members' predictions
            yhat = np.asarray(_forward_members(self._apply(), self.members, x), dtype=float)
        else:
            yhat = np.asarray(_forward(self._apply(), self.params, x), dtype=float)[None]
        if self.config["loss"] == "logistic":
            if type == "link":
                p = np.mean(1.0 / (1.0 + np.exp(-yhat)), axis=0)
                return np.log(p / (1 - p)) if len(yhat) > 1 else yhat[0]
            return np.mean(1.0 / (1.0 + np.exp(-yhat)), axis=0)
        yhat = np.mean(yhat, axis=0)
        return self.scaler.y_back(yhat) if self.scaler is not None else yhat

    def predict(self, data, type: str = "response", as_numpy: bool = False,
                na_action: str = "fail"):
        """E[y | x] (or P(y = 1 | x) for the logistic loss) on new data.

        Parameters
        ----------
        data : Arrow-compatible table (pyarrow, pandas, polars, dict of arrays)
            Must hold the control columns the model was fitted on; the
            cluster column is not needed (prediction uses theta alone).
        type : {"response", "link"}
            "link" gives the logit for the logistic loss (same as "response"
            for the squared loss).
        as_numpy : bool
            Return a NumPy array instead of a pyarrow Array.
        na_action : {"fail", "omit"}
            "omit" predicts NaN for rows with a missing control.

        Returns
        -------
        pyarrow.Array or numpy.ndarray
            One prediction per row of ``data``.
        """
        if self.x_names is None:
            raise ValueError("this model was fitted with fit_arrays: use predict_arrays")
        if self.text is not None:
            x, kept, texts = data_mod.prepare_x(data, self.x_names, na_action, self.text.columns)
            x = {"x": x, **self.text.encode(texts)}
        else:
            x, kept = data_mod.prepare_x(data, self.x_names, na_action)
        out = self.predict_arrays(x, type) if kept.any() else np.empty(0)
        if not kept.all():
            full = np.full(len(kept), np.nan)
            full[kept] = out
            out = full
        return out if as_numpy else pa.array(out)

    def predict_adapted(self, data, y: str, cluster: str, as_numpy: bool = False):
        """Cluster-adapted predictions f(theta_c^k, x) (an extra, never the
        default): each cluster of ``data`` takes the k inner steps of eq. 20 on
        its own labelled rows, then predicts them.  Needs the outcome."""
        prepared = data_mod.prepare(data, y, self.x_names, cluster, min_clusters=1,
                                    text=None if self.text is None else self.text.columns)
        x = self.scaler.x(prepared.x)
        if self.text is not None:
            x = {"x": x, **self.text.encode(prepared.texts)}
        y_fit = self.scaler.y(prepared.y) if self.config["loss"] == "squared" else prepared.y
        c = self.config
        objective = Objective(self._apply(), c["loss"], c["inner_steps"], float(c["inner_lr"]),
                              penalty=float(c["penalty"]))
        out = np.empty(len(y_fit))
        adapt_predict = jax.jit(jax.vmap(
            lambda xc, yc, mc: objective.apply(objective.adapt(self.params, xc, yc, mc), xc)[0]))
        for b in make_buckets(prepared.cluster):
            xb = jax.tree.map(lambda a: jnp.asarray(a[b.index]), x)
            yhat = adapt_predict(xb, jnp.asarray(y_fit[b.index]), jnp.asarray(b.mask))
            out[b.index[b.mask > 0]] = np.asarray(yhat)[b.mask > 0]
        if c["loss"] == "logistic":
            out = 1.0 / (1.0 + np.exp(-out))
        else:
            out = self.scaler.y_back(out)
        return out if as_numpy else pa.array(out)

    def nearest_words(self, word: str, n: int = 5) -> list:
        """A text model's ``n`` words nearest ``word`` in its learnt
        embedding (cosine similarity): [(word, similarity), ...]."""
        if self.text is None or self.config["model"] != "text":
            raise ValueError("nearest_words needs a model fitted with text columns (text=)")
        return self.text.nearest(self.params["embedding"], word, n)

    def save(self, path) -> None:
        from .persist import save
        save(self, path)

    def __repr__(self):
        c = self.config
        return (f"<rfp model {c['model'] if isinstance(c['model'], str) else 'user'}: "
                f"alpha={c['alpha']}, inner_steps={c['inner_steps']}, inner_lr={c['inner_lr']}, "
                f"{self.n_obs} obs in {self.n_clusters} clusters, best step {self.best_step}>")


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
                         "controls} (rfp.text.TextEncoder.encode gives tokens and mask); "
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


def check_columns(x, p: int) -> np.ndarray:
    """Inputs for a model fitted on ``p`` columns: a matrix with p columns
    (a vector when p = 1), or an error saying how many it has."""
    try:
        x = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("x must be numbers (a numeric matrix, one row per observation)") from None
    if x.ndim == 1 and p == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != p:
        have = x.shape[1] if x.ndim == 2 else (1 if x.ndim == 1 else x.shape[1:])
        raise ValueError(f"X has {have} column(s); the model was fitted on {p}: pass the same "
                         f"columns, in the same order, as in the fit")
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


def tune_arrays(x, y, cluster, model="mlp", grid=None, folds: int = 5, one_se: bool = False,
                progress=None, scale=True, cv_dtype: str = "float32", ensemble: int = 1,
                margin: float = MARGIN, simple: bool = True, **settings) -> FittedModel:
    """``tune`` on arrays (see ``fit_arrays`` for x, y and cluster)."""
    from .crossval import check_choice, cluster_folds, cross_validate, expand_grid, train_members
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
    fold = cluster_folds(codes, int(folds), int(base["seed"]))

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


def _words_refit(xs, y_fit, w, chosen: dict, base: dict, n_obs, labels, scaler):
    """The chosen bag of words solved on all clusters, as the text model
    with one number per word and a linear head (``bag_of_words``)."""
    config = _config({**_settings_of(base), "model": "text", "head": "linear",
                      "embedding_dim": 1, "alpha": 1.0})
    params = bag_of_words.text_params(xs, y_fit, w, float(chosen["ridge"]),
                                      int(config["vocab_size"]))
    return FittedModel(config, params, None, scaler, History(), n_obs, labels, labels,
                       labels[:0], 0, False)


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


def tune(data, y: str, x=None, cluster: str = None, *, text=None, grid=None, folds: int = 5,
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
        ``rfp.crossval.DEFAULT_GRID``: alpha in {1 (ERM), 0.5, 0 (MAML)} x
        inner_lr 0.1.
    folds : int
        K, the number of folds of whole clusters (default 5).
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
