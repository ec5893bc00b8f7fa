"""The outer loop: optax on R_k(theta), early stopping on held-out clusters.

Adam with global-norm clipping by default.  Steps run in jitted chunks of
``eval_every`` (a ``lax.scan``), after each of which the prediction loss
L(theta) on the held-out clusters is evaluated; training keeps the parameters
with the best held-out loss and stops after ``patience`` steps without
improvement.
"""
from __future__ import annotations

import sys

from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .bilevel import Objective, gather
from .layout import make_buckets
from .progress import wants_bar


@dataclass
class History:
    step: list = field(default_factory=list)
    train: list = field(default_factory=list)        # R_k(theta) on training clusters
    validation: list = field(default_factory=list)   # L(theta) on held-out clusters


@dataclass
class TrainResult:
    params: object
    history: History
    best_step: int
    stopped_early: bool
    train_clusters: np.ndarray
    validation_clusters: np.ndarray


def split_clusters(cluster: np.ndarray, share: float, seed: int):
    """Hold out round(share * G) whole clusters (at least one when share > 0
    and at least one cluster is left to train on)."""
    codes = np.unique(cluster)
    if share <= 0:
        return codes, codes[:0]
    if not 0 < share < 1:
        raise ValueError(f"validation_share must be in [0, 1), got {share}")
    n_val = min(max(1, int(round(share * len(codes)))), len(codes) - 1)
    perm = np.random.default_rng(seed).permutation(codes)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def optimizer(learning_rate: float, clip_norm: float | None, schedule: str = "constant",
              max_steps: int = 1):
    """Adam after global-norm clipping; ``schedule="cosine"`` decays the
    learning rate to zero over ``max_steps`` (for converging tightly)."""
    if schedule == "cosine":
        learning_rate = optax.cosine_decay_schedule(learning_rate, max_steps)
    elif schedule != "constant":
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    parts = [optax.clip_by_global_norm(clip_norm)] if clip_norm else []
    return optax.chain(*parts, optax.adam(learning_rate))


def progress_bar(progress, total):
    """A tqdm bar on stderr with the elapsed and remaining time (the rule of
    ``progress.wants_bar``), or the user's callback
    ``progress(step, total, train_loss, validation_loss)``."""
    if callable(progress):
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, disable=not wants_bar(progress), desc="rfp", unit="step",
                leave=False, file=sys.stderr)


@partial(jax.jit, static_argnames=("objective", "opt_settings", "length"))
def chunk(params, opt_state, alpha, buckets, objective, opt_settings, length):
    """``length`` outer steps of the optimiser on R_k, in one compiled scan.
    Module-level with static settings, so fits with the same model, settings
    and bucket shapes reuse the compiled code."""
    opt = optimizer(*opt_settings)

    def step(carry, _):
        p, s = carry
        value, grads = jax.value_and_grad(objective)(p, alpha, buckets)
        updates, s = opt.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), value

    (params, opt_state), values = jax.lax.scan(step, (params, opt_state), None, length=length)
    return params, opt_state, values


@partial(jax.jit, static_argnames=("objective",))
def pooled_loss(params, buckets, objective):
    """Held-out loss L(theta): the prediction model alone."""
    return objective.pooled(params, buckets)


def train(objective: Objective, init, x, y, cluster, w, *, alpha: float,
          learning_rate: float = 1e-2, clip_norm: float | None = 1.0, schedule: str = "constant",
          max_steps: int = 2000, patience: int | None = 200, eval_every: int = 10,
          validation_share: float = 0.2, seed: int = 0, progress=None) -> TrainResult:
    """Minimise R_k(theta) over the training clusters."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if patience is None:
        validation_share = 0.0
    train_codes, val_codes = split_clusters(cluster, validation_share, seed)
    rows_train = np.flatnonzero(np.isin(cluster, train_codes))
    rows_val = np.flatnonzero(np.isin(cluster, val_codes))
    train_buckets = gather(make_buckets(cluster, rows_train), x, y, w)
    val_buckets = gather(make_buckets(cluster, rows_val), x, y, w) if len(rows_val) else None

    first = jax.tree.map(lambda a: jnp.asarray(np.asarray(a)[:1]), x)
    params = init(jax.random.PRNGKey(seed), first)
    opt_settings = (float(learning_rate), clip_norm, schedule, int(max_steps))
    opt_state = optimizer(*opt_settings).init(params)
    history = History()
    best = (np.inf, params, 0)
    bar = progress_bar(progress, max_steps)
    alpha = jnp.asarray(alpha, dtype=jnp.result_type(float))
    step, stopped = 0, False
    try:
        while step < max_steps:
            params, opt_state, values = chunk(params, opt_state, alpha, train_buckets,
                                              objective, opt_settings, eval_every)
            step += eval_every
            train_loss = float(values[-1])
            if not np.isfinite(train_loss):
                raise FloatingPointError(
                    f"the objective became {train_loss} at step {step}: lower learning_rate "
                    f"or inner_lr (now {learning_rate} and {objective.inner_lr})")
            val = float(pooled_loss(params, val_buckets, objective)) if val_buckets else train_loss
            history.step.append(step)
            history.train.append(train_loss)
            history.validation.append(val if val_buckets else float("nan"))
            if val < best[0]:
                best = (val, params, step)
            if bar is not None:
                bar.update(eval_every)
                bar.set_postfix(train=f"{train_loss:.4g}", heldout=f"{val:.4g}")
            elif callable(progress):
                progress(step, max_steps, train_loss, val)
            if val_buckets and patience is not None and step - best[2] >= patience:
                stopped = True
                break
    finally:
        if bar is not None:
            bar.close()
    params = best[1] if val_buckets else params
    return TrainResult(jax.tree.map(np.asarray, params), history, best[2] if val_buckets else step,
                       stopped, train_codes, val_codes)
