"""A fitted model: its parameters, the scaler of its controls, its
training history, and the prediction f(theta, x) (eq. 2); the cluster is
not an input at prediction."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa

from rfp import data as data_mod
from rfp.core.bilevel import Objective
from rfp.core.layout import make_buckets
from rfp.core.models import as_model, is_text_input
from rfp.settings import DEFAULTS
from rfp.training.train import History


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
        from rfp.persist.write import save
        save(self, path)

    def __repr__(self):
        c = self.config
        return (f"<rfp model {c['model'] if isinstance(c['model'], str) else 'user'}: "
                f"alpha={c['alpha']}, inner_steps={c['inner_steps']}, inner_lr={c['inner_lr']}, "
                f"{self.n_obs} obs in {self.n_clusters} clusters, best step {self.best_step}>")


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
