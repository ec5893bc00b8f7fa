"""Save and load a fitted model: one .npz file holding the parameters as
arrays and everything else as JSON.  Predictions are identical after a round
trip (the float64 parameters are stored bit for bit)."""
from __future__ import annotations

import json

import numpy as np

from .data import Scaler
from .train import History

FORMAT = "rfp-model-1"


def _structure(tree, leaves):
    """Nested dicts/lists of arrays -> JSON structure with leaf indices."""
    if isinstance(tree, dict):
        return {"dict": {k: _structure(v, leaves) for k, v in tree.items()}}
    if isinstance(tree, (list, tuple)):
        return {"list" if isinstance(tree, list) else "tuple": [_structure(v, leaves) for v in tree]}
    leaves.append(np.asarray(tree))
    return {"leaf": len(leaves) - 1}


def _rebuild(node, arrays):
    if "dict" in node:
        return {k: _rebuild(v, arrays) for k, v in node["dict"].items()}
    if "list" in node:
        return [_rebuild(v, arrays) for v in node["list"]]
    if "tuple" in node:
        return tuple(_rebuild(v, arrays) for v in node["tuple"])
    return arrays[f"leaf{node['leaf']}"]


def _labels_to_json(labels):
    return {"dtype": labels.dtype.str, "values": labels.tolist()}


def save(model, path) -> None:
    leaves = []
    structure = _structure(model.params, leaves)
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in model.config.items()}
    meta = {
        "format": FORMAT, "config": config, "structure": structure,
        "x_names": model.x_names, "n_obs": model.n_obs, "n_dropped": model.n_dropped,
        "best_step": model.best_step, "stopped_early": model.stopped_early,
        "history": vars(model.history),
        "clusters": {k: _labels_to_json(getattr(model, k)) for k in
                     ("cluster_labels", "train_clusters", "validation_clusters")},
        "scaler": None if model.scaler is None else {
            "y_mean": model.scaler.y_mean, "y_scale": model.scaler.y_scale},
    }
    arrays = {f"leaf{i}": a for i, a in enumerate(leaves)}
    if model.scaler is not None:
        arrays["x_mean"], arrays["x_scale"] = model.scaler.x_mean, model.scaler.x_scale
    with open(path, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)


def load(path, model=None):
    """Load a model saved with ``FittedModel.save``.

    Parameters
    ----------
    path : str or path-like
        The file written by ``save`` (NumPy ``.npz`` with the settings as JSON).
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
        The file is not an rfp model file, or a user model is missing.
    """
    from .api import FittedModel
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("meta")))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not an rfp model file (format {meta.get('format')!r})")
    config = meta["config"]
    if config.get("hidden") is not None:
        config["hidden"] = tuple(config["hidden"])
    if config["model"] == "user" and model is None:
        raise ValueError("this model was fitted with a user (init, apply) pair: pass it as load(path, model=...)")
    s = meta["scaler"]
    scaler = None if s is None else Scaler(arrays["x_mean"], arrays["x_scale"], s["y_mean"], s["y_scale"])
    labels = {k: np.array(v["values"], dtype=np.dtype(v["dtype"])) for k, v in meta["clusters"].items()}
    return FittedModel(config, _rebuild(meta["structure"], arrays), meta["x_names"], scaler,
                       History(**meta["history"]), meta["n_obs"], labels["cluster_labels"],
                       labels["train_clusters"], labels["validation_clusters"], meta["best_step"],
                       meta["stopped_early"], meta["n_dropped"], user_model=model)
