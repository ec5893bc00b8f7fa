"""Load a model file written by ``persist.write``: every part checked
(``NotAModelFile`` names what is wrong) before a model is rebuilt."""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from rfp.data import Scaler
from rfp.persist.write import FORMAT, LABELS
from rfp.settings import DEFAULTS, validate
from rfp.training.train import History

READABLE = ("rfp-model-1", FORMAT)
# settings a named model cannot predict without (the others have defaults)
REQUIRED = {"mlp": ("hidden", "activation"), "neural_ode": ("activation",),
            "text": ("head", "hidden", "activation", "embedding_dim", "vocab_size")}


class NotAModelFile(ValueError):
    """A file that is not (or no longer) an rfp model file."""


def load(path, model=None):
    """Load a model saved with ``FittedModel.save``.

    Parameters
    ----------
    path : str or path-like
        The file written by ``save`` (NumPy ``.npz`` with the settings as JSON;
        read without unpickling anything).
    model : (init, apply) pair, optional
        Needed again, and only, for a model fitted with a user's pair of JAX
        functions (their code is not stored).

    Returns
    -------
    FittedModel
        Predicts exactly as the saved model did.

    Raises
    ------
    ValueError
        ``NotAModelFile`` (a ValueError) when the file is not an rfp model
        file (damaged, foreign, invalid settings); a ValueError when a user
        model is missing.
    FileNotFoundError
        No file at ``path``.
    """
    return load_with_extra(path, model)[0]


def load_with_extra(path, model=None):
    """(the model, the ``extra`` data saved with it or None)."""
    path = os.path.expanduser(os.fspath(path))   # "~/m.rfp", as R's path.expand
    arrays = _read_archive(path)
    bad = lambda why: NotAModelFile(f"{path} is not an rfp model file ({why})")  # noqa: E731
    extra = arrays.pop("extra", None)
    if extra is not None:
        extra = _read_meta(extra, bad, "extra")
    return _model(path, arrays, model, bad), extra


def _model(path, arrays, model, bad):
    from rfp.training.fitted import FittedModel
    meta = _read_meta(arrays.pop("meta", None), bad)
    if meta.get("format") not in READABLE:
        raise bad(f"format {meta.get('format')!r}; this rfp reads {', '.join(READABLE)}")
    need = ("config", "structure", "x_names", "n_obs", "n_dropped", "best_step",
            "stopped_early", "history", "scaler")
    missing = [k for k in need if k not in meta]
    if missing:
        raise bad(f"its metadata lacks {missing}")
    config = _read_config(meta["config"], bad)
    if config["model"] == "user" and model is None:
        raise ValueError("this model was fitted with a user (init, apply) pair: pass it as "
                         "load(path, model=...)")
    x_names = meta["x_names"]
    if x_names is not None and (not isinstance(x_names, list)
                                or not all(isinstance(n, str) for n in x_names)):
        raise bad("x_names is not a list of column names")
    scaler = _read_scaler(meta["scaler"], arrays, bad)
    params = _rebuild(meta["structure"], arrays, bad)
    p = len(x_names) if x_names is not None else (scaler.x_mean.size if scaler else None)
    if scaler is not None and p != scaler.x_mean.size:
        raise bad(f"{p} controls named but a scaling for {scaler.x_mean.size}")
    text = _read_text(meta.get("text"), config, bad, x_names)
    _check_shapes(params, config, model, p, bad, text)
    labels = _read_labels(meta, arrays, bad)
    history = _read_history(meta["history"], bad)
    counts = {k: meta[k] for k in ("n_obs", "n_dropped", "best_step")}
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in counts.values()):
        raise bad(f"n_obs, n_dropped and best_step must be whole numbers >= 0, got {counts}")
    fitted = FittedModel(config, params, x_names, scaler, history, counts["n_obs"],
                         labels["cluster_labels"], labels["train_clusters"],
                         labels["validation_clusters"], counts["best_step"],
                         bool(meta["stopped_early"]), counts["n_dropped"], user_model=model)
    fitted.cv = _read_cv(meta.get("cv"), bad)
    fitted.members = _read_members(meta.get("members"), arrays, params, bad)
    fitted.text = text
    return fitted


def _read_text(node, config, bad, x_names):
    """A text model's encoder (None without text columns)."""
    if node is None:
        if config["model"] == "text" and x_names is not None:
            raise bad("a text model without its vocabulary")
        return None
    from rfp.core.text import TextEncoder
    try:
        text = TextEncoder.from_json(node)
        ok = (isinstance(text.columns, list) and text.columns and text.length >= 1
              and all(isinstance(c, str) for c in text.columns))
    except Exception:
        raise bad("its vocabulary is damaged") from None
    if not ok or config["model"] != "text" or text.vocab_size > int(config["vocab_size"]):
        raise bad("its vocabulary does not match its model")
    return text


def _read_members(node, arrays, params, bad):
    """An ensemble's stacked parameters (None without one): every leaf is
    the matching leaf of ``params`` with a leading member axis."""
    if node is None:
        return None
    import jax
    members = _rebuild(node, arrays, bad)
    try:
        pairs = list(zip(jax.tree.leaves(members), jax.tree.leaves(params), strict=True))
        same = jax.tree.structure(members) == jax.tree.structure(params)
    except ValueError:
        raise bad("its ensemble does not match its parameters") from None
    sizes = {m.shape[0] if m.ndim else -1 for m, _ in pairs}
    if not same or len(sizes) != 1 or any(m.shape[1:] != np.shape(p) for m, p in pairs):
        raise bad("its ensemble does not match its parameters")
    return members


def _read_cv(c, bad):
    """The ``CVResult`` of a tuned model (None for an untuned one)."""
    if c is None:
        return None
    from rfp.tuning.cv_result import CVResult
    try:
        configs = [dict(cf, hidden=tuple(int(h) for h in cf["hidden"]))
                   if cf.get("hidden") is not None else dict(cf) for cf in c["configs"]]
        cv = CVResult(
            configs=configs, loss=np.asarray(c["loss"], dtype=float),
            se=np.asarray(c["se"], dtype=float), best_step=np.asarray(c["best_step"], dtype=int),
            steps=[np.asarray(v, dtype=int) for v in c["steps"]],
            curves=[np.asarray(v, dtype=float) for v in c["curves"]],
            chosen=int(c["chosen"]), chosen_step=int(c["chosen_step"]),
            mean_loss=float(c["mean_loss"]), mean_se=float(c["mean_se"]), folds=int(c["folds"]),
            one_se=bool(c["one_se"]), max_steps=int(c["max_steps"]),
            fold_of_cluster=None if c["fold_of_cluster"] is None else
            np.asarray(c["fold_of_cluster"], dtype=int),
            # files before the paired columns (format of issue 18) have none
            diff=None if c.get("diff") is None else np.asarray(c["diff"], dtype=float),
            se_diff=None if c.get("se_diff") is None else np.asarray(c["se_diff"], dtype=float),
            margin=float(c.get("margin", 0.0)))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise bad("its cross-validation table is damaged") from None
    g = len(cv.configs)
    if not (len(cv.loss) == len(cv.se) == len(cv.best_step) == len(cv.steps) == len(cv.curves)
            == g and 0 <= cv.chosen <= g):
        raise bad("its cross-validation table is damaged")
    return cv


def _read_archive(path) -> dict:
    """Every member of the .npz as an array, never unpickling."""
    bad = lambda why: NotAModelFile(f"{path} is not an rfp model file ({why})")  # noqa: E731
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such model file: {path}") from None
    except IsADirectoryError:
        raise bad("it is a folder") from None
    if head.startswith(b"\x93NUMPY"):
        raise bad("it holds a single NumPy array, not an rfp archive")
    if not head.startswith(b"PK"):
        raise bad("not a .npz archive: empty, or another kind of file")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, TypeError,
            AttributeError) as err:
        if "pickle" in str(err):
            raise bad("it holds pickled Python objects, which rfp never loads") from None
        raise bad(f"a damaged or truncated archive: {err}") from None


def _read_meta(meta, bad, member="meta") -> dict:
    if meta is None:
        raise bad(f"no '{member}' member")
    if meta.shape != () or meta.dtype.kind != "U":
        raise bad(f"its '{member}' member is not a JSON text")
    try:
        out = json.loads(str(meta))
    except (json.JSONDecodeError, RecursionError) as err:
        raise bad(f"its metadata is not valid JSON: {err}") from None
    if not isinstance(out, dict):
        raise bad("its metadata is not a JSON object")
    return out


def _read_config(config, bad) -> dict:
    if not isinstance(config, dict) or "model" not in config:
        raise bad("its settings are not a dict with a model")
    config = dict(config)
    named = config["model"] if isinstance(config["model"], str) else None
    lacking = [k for k in REQUIRED.get(named, ()) if config.get(k) is None]
    if lacking:
        raise bad(f"its settings lack {', '.join(lacking)}, which a {config['model']} model "
                  f"needs")
    if config["model"] == "user" or config.get("hidden") is None:
        hidden = config.pop("hidden", None)
    else:
        hidden = "given"
    try:
        config = validate(config, "fit", saved=True)
    except (TypeError, ValueError) as err:
        raise bad(f"its settings are invalid: {err}") from None
    config = {**DEFAULTS, **config}  # a file from an older rfp may lack a newer setting
    if hidden != "given":
        config["hidden"] = None
    return config


def _rebuild(node, arrays, bad, depth=0):
    if depth > 64 or not isinstance(node, dict) or len(node) != 1:
        raise bad("its parameter structure is damaged")
    kind, value = next(iter(node.items()))
    if kind == "dict" and isinstance(value, dict):
        return {k: _rebuild(v, arrays, bad, depth + 1) for k, v in value.items()}
    if kind in ("list", "tuple") and isinstance(value, list):
        items = [_rebuild(v, arrays, bad, depth + 1) for v in value]
        return items if kind == "list" else tuple(items)
    if kind == "leaf" and isinstance(value, int):
        leaf = arrays.get(f"leaf{value}")
        if leaf is None:
            raise bad(f"parameter leaf{value} is missing")
        if leaf.dtype.kind not in "fiu" or not np.all(np.isfinite(leaf)):
            raise bad(f"parameter leaf{value} is not an array of finite numbers")
        return leaf
    raise bad("its parameter structure is damaged")


def _read_scaler(s, arrays, bad):
    if s is None:
        return None
    try:
        x_mean, x_scale = arrays["x_mean"], arrays["x_scale"]
        y_mean, y_scale = float(s["y_mean"]), float(s["y_scale"])
    except (KeyError, TypeError, ValueError):
        raise bad("its scaling is incomplete") from None
    ok = (x_mean.ndim == 1 and x_mean.shape == x_scale.shape and x_mean.dtype.kind == "f"
          and x_scale.dtype.kind == "f" and np.all(np.isfinite(x_mean))
          and np.all(np.isfinite(x_scale)) and np.all(x_scale > 0)
          and np.isfinite(y_mean) and np.isfinite(y_scale) and y_scale > 0)
    if not ok:
        raise bad("its scaling is not finite numbers with positive scales")
    return Scaler(x_mean, x_scale, y_mean, y_scale)


def _check_shapes(params, config, user_model, p, bad, text=None):
    """The parameters have the shapes the model's init makes for p inputs
    (and the text columns of ``text``)."""
    if p is None:
        return  # fit_arrays with a user pytree: nothing to compare against
    import jax

    from rfp.core.models import as_model
    from rfp.training.fitted import _model_options
    m = as_model(user_model) if config["model"] == "user" else \
        as_model(config["model"], **_model_options(config))
    try:
        sample = np.zeros((1, p))
        if text is not None:
            ids = np.zeros((1, len(text.columns), text.length), dtype=np.int32)
            sample = {"tokens": ids, "mask": np.zeros(ids.shape), "x": sample}
        elif config["model"] == "text":
            return   # fit_arrays with token inputs: their shape is not stored
        expected = jax.eval_shape(m.init, jax.random.PRNGKey(0), sample)
    except Exception:  # a user's init that cannot take a matrix
        return
    got = jax.tree.map(lambda a: a.shape, params)
    want = jax.tree.map(lambda a: a.shape, expected)
    if jax.tree.structure(got) != jax.tree.structure(want) or got != want:
        raise bad(f"its parameters do not fit a {config['model']} model with {p} input(s): "
                  f"shapes {got}, expected {want}")


def _read_labels(meta, arrays, bad) -> dict:
    if meta["format"] == "rfp-model-1":  # labels in the JSON
        try:
            return {k: np.array(v["values"], dtype=np.dtype(v["dtype"]))
                    for k, v in meta["clusters"].items()}
        except (KeyError, TypeError, ValueError):
            raise bad("its cluster labels are damaged") from None
    missing = [k for k in LABELS if k not in arrays]
    if missing:
        raise bad(f"it lacks the member(s) {missing}")
    out = {k: arrays[k] for k in LABELS}
    if any(a.ndim != 1 for a in out.values()):
        raise bad("its cluster labels are not one-dimensional")
    return out


def _read_history(h, bad) -> History:
    try:
        out = History(**{k: [float(v) for v in h[k]] for k in ("step", "train", "validation")})
    except (KeyError, TypeError, ValueError):
        raise bad("its training history is damaged") from None
    out.step = [int(v) for v in out.step]
    if not len(out.step) == len(out.train) == len(out.validation):
        raise bad("its training history is damaged")
    return out
