"""Save and load a fitted model: one .npz file holding the parameters, the
scaling and the cluster labels as arrays and everything else as JSON.
Predictions are identical after a round trip (the float64 parameters are
stored bit for bit).

Saving builds the whole file in memory, writes it to a temporary file in the
target's folder and renames that over the target (``os.replace``), so a save
that fails leaves an existing file as it was.  Loading never unpickles
(``allow_pickle=False``) and checks everything it reads: a damaged or
foreign file is a ``ValueError`` saying "<path> is not an rfp model file
(<what is wrong>)", and the settings it holds pass ``settings.validate`` like
a user's."""
from __future__ import annotations

import io
import json
import os
import tempfile

import numpy as np

FORMAT = "rfp-model-2"        # labels as arrays (format 1: labels in the JSON)
LABELS = ("cluster_labels", "train_clusters", "validation_clusters")


def _structure(tree, leaves):
    """Nested dicts/lists of arrays -> JSON structure with leaf indices."""
    if isinstance(tree, dict):
        return {"dict": {k: _structure(v, leaves) for k, v in tree.items()}}
    if isinstance(tree, (list, tuple)):
        return {"list" if isinstance(tree, list) else "tuple": [_structure(v, leaves) for v in tree]}
    leaves.append(np.asarray(tree))
    return {"leaf": len(leaves) - 1}


def _label_array(labels) -> np.ndarray:
    """Cluster labels as an array np.load reads without pickle (strings,
    numbers, booleans, dates and times as datetime64 / timedelta64)."""
    labels = np.asarray(labels)
    return labels.astype(str) if labels.dtype.kind == "O" else labels


def _config_json(config) -> dict:
    out = {}
    for k, v in config.items():
        if callable(v):
            raise ValueError(f"cannot save this model: its setting {k} is a function, which a "
                             f"model file cannot hold; fit with a named {k} to save it")
        out[k] = list(v) if isinstance(v, tuple) else v.tolist() if isinstance(v, np.ndarray) else v
    return out


def _cv_json(cv):
    """A tuned model's cross-validation (``cv_result.CVResult``) as JSON, or
    None; settings that are functions (a user's model) are stored by name."""
    if cv is None:
        return None
    plain = lambda v: (list(v) if isinstance(v, tuple) else v.tolist() if isinstance(v, np.ndarray)
                       else "user" if callable(v) or isinstance(v, (list, tuple)) and v and callable(v[0])
                       else v)
    return {
        "configs": [{k: plain(v) for k, v in c.items()} for c in cv.configs],
        "loss": [float(v) for v in cv.loss], "se": [float(v) for v in cv.se],
        "best_step": [int(v) for v in cv.best_step],
        "steps": [[int(v) for v in s] for s in cv.steps],
        "curves": [[float(v) for v in c] for c in cv.curves],
        "chosen": int(cv.chosen), "chosen_step": int(cv.chosen_step),
        "mean_loss": float(cv.mean_loss), "mean_se": float(cv.mean_se), "folds": int(cv.folds),
        "one_se": bool(cv.one_se), "max_steps": int(cv.max_steps),
        "fold_of_cluster": None if cv.fold_of_cluster is None else
        [int(v) for v in cv.fold_of_cluster],
        "diff": None if cv.diff is None else [float(v) for v in cv.diff],
        "se_diff": None if cv.se_diff is None else [float(v) for v in cv.se_diff],
        "margin": float(cv.margin),
    }


def archive(model, extra: dict | None = None) -> bytes:
    """The model file's bytes (built in memory: nothing is written).
    ``extra``: plain data (JSON) stored beside the model, e.g. the R
    package's design (``rfp_save``)."""
    leaves = []
    structure = _structure(model.params, leaves)
    meta = {
        "format": FORMAT, "config": _config_json(model.config), "structure": structure,
        "x_names": model.x_names, "n_obs": int(model.n_obs), "n_dropped": int(model.n_dropped),
        "best_step": int(model.best_step), "stopped_early": bool(model.stopped_early),
        "history": {k: [float(v) if k != "step" else int(v) for v in vals]
                    for k, vals in vars(model.history).items()},
        "scaler": None if model.scaler is None else {
            "y_mean": float(model.scaler.y_mean), "y_scale": float(model.scaler.y_scale)},
        "cv": _cv_json(getattr(model, "cv", None)),
        "members": None if getattr(model, "members", None) is None else
        _structure(model.members, leaves),
        # text columns: the vocabulary as the tokenizer's own JSON (no pickle)
        "text": None if getattr(model, "text", None) is None else model.text.to_json(),
    }
    arrays = {f"leaf{i}": a for i, a in enumerate(leaves)}
    for k in LABELS:
        arrays[k] = _label_array(getattr(model, k))
    if model.scaler is not None:
        arrays["x_mean"], arrays["x_scale"] = model.scaler.x_mean, model.scaler.x_scale
    if extra is not None:
        arrays["extra"] = np.array(json.dumps(extra, allow_nan=True))
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta, allow_nan=True)), **arrays)
    return buffer.getvalue()


def save(model, path, extra: dict | None = None) -> None:
    """Write ``model`` (and ``extra``, see ``archive``) to ``path``
    atomically: a temporary file in the same folder, renamed over the target
    only once it is complete."""
    payload = archive(model, extra)
    path = os.path.expanduser(os.fspath(path))   # "~/m.rfp", as R's path.expand
    folder = os.path.dirname(os.path.abspath(path))
    _check_target(path, folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".rfp-save-", suffix=".tmp", dir=folder)
    except PermissionError:
        raise PermissionError(f"cannot save the model to {path}: no permission to write in "
                              f"the folder {folder}; choose another folder") from None
    except OSError as err:
        raise OSError(f"cannot save the model to {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _check_target(path, folder) -> None:
    """A file name in an existing folder: an error naming the user's path and
    what is wrong (never the temporary file's name)."""
    if not os.path.basename(path) or os.path.isdir(path):
        raise IsADirectoryError(f"cannot save the model to {path}: it is a folder; give a file "
                                f"name, e.g. {os.path.join(path, 'model.rfp')}")
    if not os.path.isdir(folder):
        what = "is a file, not a folder" if os.path.exists(folder) else "does not exist"
        raise FileNotFoundError(f"cannot save the model to {path}: the folder {folder} {what}; "
                                f"create the folder first or choose another path")


def _file_mode(path) -> int:
    """The target's permissions if it exists, else what a new file gets."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask
