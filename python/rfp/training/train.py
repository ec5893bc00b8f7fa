"""The outer loop: optax on R_k(theta), early stopping on held-out clusters.

Adam with global-norm clipping by default.  Steps run in jitted chunks of
``eval_every`` (a ``lax.scan``), after each of which the prediction loss
L(theta) on the held-out clusters is evaluated; training keeps the parameters
with the best held-out loss among the steps from ``min_steps`` on, and stops
after ``patience`` steps without improvement.  ``min_steps`` (default 50)
is there because the held-out loss of a few clusters is noisy: on 30
development samples of each tragic-triad design, ignoring the evaluations
before step 50 lowered the error on new clusters at 2 SE against keeping
any step (validation/TUNING.md, "Stopping rule").

After training, warnings (``alerts``) say when the result is not usable as it
stands: the best held-out loss came at the first evaluation that counts (the model kept is
close to its random start) or at the last one (not converged: raise
``max_steps``), it is no better than predicting the training clusters' mean
outcome on the held-out clusters, or the objective rose more than
``DIVERGED`` times above the loss of the starting parameters (training then
stops and keeps the best step: a divergence that stays finite).
"""
from __future__ import annotations

import dataclasses
import sys
import warnings
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rfp import alerts
from rfp.core import devices as devices_mod
from rfp.core import minibatch
from rfp.core.bilevel import Objective, floats_as, gather
from rfp.core.closed_form import constant_fit
from rfp.core.layout import make_buckets
from rfp.progress import wants_bar

# the objective is taken to diverge once it exceeds this multiple of the
# pooled loss at the starting parameters
DIVERGED = 1e3


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


def optimizer(clip_norm: float | None, schedule: str = "constant", max_steps: int = 1):
    """The direction of an outer step: Adam after global-norm clipping, times
    a cosine decay from 1 to 0 over ``max_steps`` with ``schedule="cosine"``.
    The learning rate multiplies it in ``outer_step``, as a traced value, so
    one compiled program serves every learning rate."""
    parts = [optax.clip_by_global_norm(clip_norm)] if clip_norm else []
    parts.append(optax.scale_by_adam())
    if schedule == "cosine":
        parts.append(optax.scale_by_schedule(optax.cosine_decay_schedule(1.0, max_steps)))
    elif schedule != "constant":
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    return optax.chain(*parts)


def outer_step(objective, opt, params, opt_state, hyper, buckets):
    """One outer step on R_k: value and gradient (through the inner loop),
    then theta <- theta - learning_rate * direction.  ``hyper`` holds alpha,
    inner_lr and learning_rate as (traced) scalars."""
    value, grads = jax.value_and_grad(objective)(params, hyper["alpha"], buckets,
                                                 hyper["inner_lr"])
    direction, opt_state = opt.update(grads, opt_state, params)
    params = jax.tree.map(lambda p, d: p - hyper["learning_rate"] * d, params, direction)
    return params, opt_state, value


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
def chunk(params, opt_state, hyper, buckets, objective, opt_settings, length):
    """``length`` outer steps of the optimiser on R_k, in one compiled scan.
    Module-level with static settings (alpha, eta and the learning rate are
    traced), so fits with the same model and bucket shapes reuse the
    compiled code."""
    opt = optimizer(*opt_settings)

    def step(carry, _):
        p, s, value = outer_step(objective, opt, *carry, hyper, buckets)
        return (p, s), value

    (params, opt_state), values = jax.lax.scan(step, (params, opt_state), None, length=length)
    return params, opt_state, values


@partial(jax.jit, static_argnames=("objective", "opt_settings"))
def minibatch_chunk(params, opt_state, hyper, buckets, picks, scales, objective, opt_settings):
    """Outer steps on minibatches of clusters (``minibatch``): step t uses
    the clusters at positions ``picks[b][t]`` of each bucket b, weights
    times ``scales[b]``; as many steps as ``picks`` has rows."""
    opt = optimizer(*opt_settings)

    def step(carry, pick):
        p, s, value = outer_step(objective, opt, *carry, hyper,
                                 minibatch.select(buckets, pick, scales))
        return (p, s), value

    (params, opt_state), values = jax.lax.scan(step, (params, opt_state), picks)
    return params, opt_state, values


@partial(jax.jit, static_argnames=("objective",))
def pooled_loss(params, buckets, objective):
    """Held-out loss L(theta): the prediction model alone."""
    return objective.pooled(params, buckets)


def train(objective: Objective, init, x, y, cluster, w, *, alpha: float,
          learning_rate: float = 1e-2, clip_norm: float | None = 1.0, schedule: str = "constant",
          max_steps: int = 2000, patience: int | None = 200, min_steps: int = 50,
          eval_every: int = 10,
          validation_share: float = 0.2, seed: int = 0, progress=None,
          dtype: str = "float64", batch_clusters: int | None = None,
          devices=None) -> TrainResult:
    """Minimise R_k(theta) over the training clusters.  ``dtype="float32"``
    trains in single precision (data, parameters, optimiser state); the
    parameters are returned in float64.  ``batch_clusters = B``: each outer
    step on B training clusters (``minibatch``); the training curve is then
    the minibatch objective.  ``devices`` (an int or "all"): clusters split
    across a device mesh, parameters replicated (``devices``)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if patience is None:
        validation_share = 0.0
    train_codes, val_codes = split_clusters(cluster, validation_share, seed)
    rows_train = np.flatnonzero(np.isin(cluster, train_codes))
    rows_val = np.flatnonzero(np.isin(cluster, val_codes))
    dtype = jnp.dtype(dtype)
    train_layout = make_buckets(cluster, rows_train)
    train_buckets = gather(train_layout, x, y, w, dtype)
    sampler = None
    if batch_clusters is not None and batch_clusters < len(train_codes):
        sampler = minibatch.ClusterSampler([len(b.clusters) for b in train_layout],
                                           int(batch_clusters), seed + 1)
        scales = [jnp.asarray(s, dtype=dtype) for s in sampler.scales()]
    val_buckets = (gather(make_buckets(cluster, rows_val), x, y, w, dtype)
                   if len(rows_val) else None)

    first = floats_as(jax.tree.map(lambda a: jnp.asarray(np.asarray(a)[:1]), x), dtype)
    params = floats_as(init(jax.random.PRNGKey(seed), first), dtype)
    # only the cosine schedule depends on max_steps: other fits share a program
    opt_settings = (clip_norm, schedule, int(max_steps) if schedule == "cosine" else 1)
    opt_state = optimizer(*opt_settings).init(params)
    program = dataclasses.replace(objective, inner_lr=0.0)   # eta is traced
    hyper = {k: jnp.asarray(v, dtype=dtype) for k, v in
             (("alpha", alpha), ("inner_lr", objective.inner_lr), ("learning_rate", learning_rate))}
    chosen = devices_mod.choose(devices)
    if chosen is not None:
        if sampler is not None:
            raise ValueError("batch_clusters and devices cannot be combined yet: use one")
        m = devices_mod.mesh(chosen)
        train_buckets = devices_mod.shard_buckets(train_buckets, m)
        val_buckets = devices_mod.shard_buckets(val_buckets, m) if val_buckets else None
        params, opt_state, hyper = devices_mod.replicate((params, opt_state, hyper), m)
    history = History()
    best = (np.inf, params, 0)
    # no step before min_steps is kept (all of them count when max_steps is smaller)
    first_kept = min(int(min_steps), int(max_steps))
    best_any = best
    bar = progress_bar(progress, max_steps)
    start_loss = float(pooled_loss(params, train_buckets, objective))
    step, stopped = 0, False
    try:
        while step < max_steps:
            length = min(eval_every, max_steps - step)
            if sampler is None:
                params, opt_state, values = chunk(params, opt_state, hyper, train_buckets,
                                                  program, opt_settings, length)
            else:
                picks = [jnp.asarray(p) for p in sampler.draw(length)]
                params, opt_state, values = minibatch_chunk(
                    params, opt_state, hyper, train_buckets, picks, scales, program, opt_settings)
            step += length
            train_loss = float(values[-1])
            if not np.isfinite(train_loss):
                raise FloatingPointError(
                    f"the objective became {train_loss} at step {step}: lower learning_rate "
                    f"or inner_lr (now {learning_rate} and {objective.inner_lr})")
            val = float(pooled_loss(params, val_buckets, objective)) if val_buckets else train_loss
            history.step.append(step)
            history.train.append(train_loss)
            history.validation.append(val if val_buckets else float("nan"))
            if step >= first_kept and val < best[0]:
                best = (val, params, step)
            if val < best_any[0]:   # kept only if training ends before min_steps (divergence)
                best_any = (val, params, step)
            if bar is not None:
                bar.update(length)
                bar.set_postfix(train=f"{train_loss:.4g}", heldout=f"{val:.4g}")
            elif callable(progress):
                progress(step, max_steps, train_loss, val)
            if train_loss > DIVERGED * max(start_loss, 1e-12):
                warnings.warn(
                    f"training diverged: the objective rose to {train_loss:.3g} at step {step} "
                    f"from a starting loss of {start_loss:.3g}; lower learning_rate or inner_lr "
                    f"(now {learning_rate} and {objective.inner_lr}). The best step before it "
                    f"({best[2]}) is kept", alerts.DivergenceWarning, stacklevel=4)
                stopped = True
                break
            if val_buckets and patience is not None and step - max(best[2], first_kept) >= patience:
                stopped = True
                break
    finally:
        if bar is not None:
            bar.close()
    if best[2] == 0:   # stopped before min_steps: the best of what ran
        best, first_kept = best_any, 0
    if val_buckets:
        check_stopping(history, best[2], stopped, constant_loss(y, w, rows_train, rows_val,
                                                                objective.loss), first_kept)
    params = best[1] if val_buckets else params
    return TrainResult(floats_as(jax.tree.map(np.asarray, params), np.float64), history, best[2] if val_buckets else step,
                       stopped, train_codes, val_codes)


def constant_loss(y, w, rows_train, rows_val, loss: str) -> float:
    """Held-out loss of the constant predictor (``closed_form.constant_fit``
    on the training clusters: the weighted mean outcome, or its log-odds for
    the logistic loss)."""
    c = constant_fit(y[rows_train], w[rows_train], loss).intercept
    yv, wv = y[rows_val], w[rows_val]
    li = np.logaddexp(0.0, c) - yv * c if loss == "logistic" else (yv - c) ** 2
    return float(np.sum(wv * li) / np.sum(wv))


def check_stopping(history: History, best_step: int, stopped: bool, mean_loss: float,
                   first_kept: int = 0) -> None:
    """The warnings of the module docstring, from the held-out curve (the
    evaluations from ``first_kept`` on)."""
    counted = [i for i, s in enumerate(history.step) if s >= first_kept]
    steps = [history.step[i] for i in counted]
    best_val = min(history.validation[i] for i in counted)
    if len(steps) > 1 and best_step == steps[0]:
        warnings.warn(
            f"the best held-out loss came at the first evaluation that counts (step "
            f"{best_step}) and only rose after it: the model kept is barely trained. Tune the "
            f"settings (rfp.tune / rfp(tune = TRUE)) or lower learning_rate",
            alerts.StoppedAtOnceWarning, stacklevel=5)
    elif not stopped and best_step == steps[-1]:
        warnings.warn(
            f"not converged: the held-out loss was still falling at the last step "
            f"({best_step}); increase max_steps", alerts.NotConvergedWarning, stacklevel=5)
    if best_val >= mean_loss:
        warnings.warn(
            f"the held-out loss ({best_val:.4g}) is no better than predicting the training "
            f"clusters' mean outcome ({mean_loss:.4g}): the fit does not generalise to new "
            f"clusters. Tune the settings (rfp.tune / rfp(tune = TRUE))",
            alerts.NoBetterThanMeanWarning, stacklevel=5)
