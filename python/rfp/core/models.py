"""Models f(theta, x): linear, MLP, neural-ODE feature map, text embedding
bag, or a user's pair.

Builders are cached: the same settings give the same functions, so JAX
reuses compiled code across fits.  Every model is an ``(init, apply)`` pair of pure JAX functions:
``init(key, x) -> params`` and ``apply(params, x) -> yhat`` or
``(yhat, penalty)``.  The penalty is a forward-pass regulariser (e.g. the
kinetic energy of a neural ODE) that enters the loss times lambda.
``x`` may be any pytree whose leaves share a leading observation axis.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "softplus": jax.nn.softplus,
    "sigmoid": jax.nn.sigmoid,
    "elu": jax.nn.elu,
    "swish": jax.nn.swish,
}


class Model(NamedTuple):
    init: Callable
    apply: Callable  # always returns (yhat, penalty) after `as_model`


def _dense(key, n_in, n_out):
    """LeCun-normal weights, zero bias."""
    w = jax.random.normal(key, (n_in, n_out)) / jnp.sqrt(n_in)
    return {"w": w, "b": jnp.zeros(n_out)}


@functools.lru_cache(maxsize=None)
def linear() -> Model:
    def init(key, x):
        return _dense(key, x.shape[-1], 1)

    def apply(params, x):
        return (x @ params["w"] + params["b"])[:, 0], 0.0

    return Model(init, apply)


@functools.lru_cache(maxsize=None)
def mlp(hidden=(32, 32), activation: str = "tanh") -> Model:
    """Feed-forward network with len(hidden) hidden layers."""
    act = _activation(activation)
    def init(key, x):
        sizes = (x.shape[-1], *hidden, 1)
        keys = jax.random.split(key, len(sizes) - 1)
        return [_dense(k, a, b) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]

    def apply(params, x):
        h = x
        for layer in params[:-1]:
            h = act(h @ layer["w"] + layer["b"])
        out = params[-1]
        return (h @ out["w"] + out["b"])[:, 0], 0.0

    return Model(init, apply)


@functools.lru_cache(maxsize=None)
def neural_ode(width: int = 16, steps: int = 8, activation: str = "tanh") -> Model:
    """Neural-ODE feature map h' = act(A h + b), h(0) = W x, integrated on
    [0, 1] by RK4, then a linear head.  The penalty is the kinetic energy
    integral of ||h'(t)||^2 / width along the path, one per observation."""
    act = _activation(activation)
    dt = 1.0 / steps

    def init(key, x):
        k1, k2, k3 = jax.random.split(key, 3)
        lift = _dense(k1, x.shape[-1], width)
        field = _dense(k2, width, width)
        field["w"] = field["w"] * 0.1
        return {"lift": lift, "field": field, "head": _dense(k3, width, 1)}

    def apply(params, x):
        f = lambda h: act(h @ params["field"]["w"] + params["field"]["b"])
        h = x @ params["lift"]["w"] + params["lift"]["b"]
        energy = jnp.zeros(h.shape[0])
        for _ in range(steps):
            k1 = f(h)
            k2 = f(h + 0.5 * dt * k1)
            k3 = f(h + 0.5 * dt * k2)
            k4 = f(h + dt * k3)
            energy = energy + dt * jnp.mean(k1 ** 2, axis=-1)
            h = h + dt * (k1 + 2 * k2 + 2 * k3 + k4) / 6
        head = params["head"]
        return (h @ head["w"] + head["b"])[:, 0], energy

    return Model(init, apply)


@functools.lru_cache(maxsize=None)
def text_bag(head: str = "mlp", hidden=(32, 32), activation: str = "tanh",
             embedding_dim: int = 16, vocab_size: int = 2000) -> Model:
    """Text and numeric controls: each text column's token embeddings
    averaged over its real tokens (an embedding bag: the mask of
    ``text.TextEncoder`` weighs padding 0), the C pooled vectors joined with
    the numeric controls, then the ``head`` ("mlp" or "linear").  Input: the
    pytree ``{"tokens": (n, C, L) ids, "mask": (n, C, L), "x": (n, p)}``.
    Every parameter, the embedding table included, is in theta, so inner
    steps adapt all of them (memory: one (vocab_size x embedding_dim) table
    per cluster in a bucket while it adapts)."""
    top = mlp(tuple(hidden), activation) if head == "mlp" else linear()

    def features(params, x):
        emb = params["embedding"][x["tokens"].astype(jnp.int32)]      # (n, C, L, d)
        mask = x["mask"].astype(emb.dtype)[..., None]
        pooled = jnp.sum(emb * mask, axis=2) / jnp.maximum(jnp.sum(mask, axis=2), 1.0)
        return jnp.concatenate([pooled.reshape(pooled.shape[0], -1), x["x"]], axis=-1)

    def init(key, x):
        k1, k2 = jax.random.split(key)
        table = jax.random.normal(k1, (vocab_size, embedding_dim))
        return {"embedding": table,
                "head": top.init(k2, features({"embedding": table}, x))}

    def apply(params, x):
        return top.apply(params["head"], features(params, x))

    return Model(init, apply)


def is_text_input(x) -> bool:
    """x is the text pytree (``{"tokens", "mask", "x"}``) of ``text_bag``."""
    return isinstance(x, dict) and set(x) == {"tokens", "mask", "x"}


def _activation(name):
    if callable(name):
        return name
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def as_model(model="mlp", **options) -> Model:
    """Resolve a model name or a user's (init, apply) pair; ``apply`` of the
    result always returns (yhat, penalty)."""
    if isinstance(model, str):
        builders = {"linear": linear, "mlp": mlp, "neural_ode": neural_ode, "text": text_bag}
        if model not in builders:
            raise ValueError(f"model must be one of {sorted(builders)} or an (init, apply) pair, got {model!r}")
        if "hidden" in options:
            options["hidden"] = tuple(int(h) for h in options["hidden"])
        return builders[model](**options)
    if isinstance(model, (tuple, list)) and len(model) == 2 and all(map(callable, model)):
        return _user_model(*model)
    raise ValueError("model must be a name ('linear', 'mlp', 'neural_ode') or an (init, apply) pair of functions")


@functools.lru_cache(maxsize=64)
def _user_model(init, apply) -> Model:
    """A user's pair, with apply returning (yhat, penalty).  Cached so that
    the same pair gives the same function and compiled code is reused."""
    def apply_pair(params, x):
        out = apply(params, x)
        return out if isinstance(out, tuple) else (out, 0.0)

    return Model(init, apply_pair)
