"""The objective R_k(theta) of docs/DESIGN.md, and nothing else.

    R_k(theta) = sum_i w_i [alpha L_i(theta) + (1 - alpha) L_i(theta_c(i)^k)] / sum_i w_i
    theta_c^0 = theta,
    theta_c^j = theta_c^(j-1) - eta grad sum_{i in c} w_i L_i(theta_c^(j-1)) / sum_{i in c} w_i

(eq. 18-20 of "Regularizing the Forward Pass"; alpha weights the pooled loss,
alpha = 1 is ordinary training, alpha = 0 is MAML).  The inner steps of all
clusters of a size bucket run in parallel under ``vmap``; the outer gradient
flows through them (second order), or treats the inner gradients as constants
with ``first_order=True``.  L_i includes lambda times the model's forward-pass
penalty.

The observation weights w_i (``observation_weights``) are the user's case
weights (1 when none are given), divided by their cluster's sum under
``equal_clusters`` (each cluster weighs the same).  The inner step takes the
w-weighted mean of the cluster's losses, so a case weight of 2 is the same
as the row twice; with equal weights within a cluster (no case weights) it
is the plain mean (1/n_c) sum_{i in c} L_i of eq. 20.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rfp.core.layout import Bucket


def squared(y, yhat):
    return (y - yhat) ** 2


def logistic(y, logit):
    """Negative Bernoulli log-likelihood of y in {0, 1} given a logit."""
    return jax.nn.softplus(logit) - y * logit


LOSSES = {"squared": squared, "logistic": logistic}


@dataclass(frozen=True)
class Objective:
    apply: Callable            # (params, x) -> (yhat, penalty)
    loss: str = "squared"
    inner_steps: int = 1       # k
    inner_lr: float = 0.1      # eta
    first_order: bool = False
    penalty: float = 0.0       # lambda

    def observation_losses(self, params, x, y):
        """L_i(theta) for each row: the loss plus lambda times the penalty."""
        yhat, pen = self.apply(params, x)
        return LOSSES[self.loss](y, yhat) + self.penalty * jnp.broadcast_to(pen, jnp.shape(y))

    def cluster_loss(self, params, x, y, mask):
        """sum_{i in c} m_i L_i(theta) / sum_{i in c} m_i over one cluster:
        ``mask`` is 1 on real rows and 0 on padding, or the rows' weights
        (then the weighted mean; 0 when every weight is 0)."""
        total = jnp.sum(mask)
        return jnp.sum(mask * self.observation_losses(params, x, y)) / jnp.where(
            total > 0, total, 1.0)

    def adapt(self, params, x, y, mask, inner_lr=None):
        """theta_c^k: k gradient steps on one cluster's (weighted) loss (eq. 20).
        ``inner_lr`` (eta) may be a traced array, so that one compiled
        program serves many step sizes (tuning); default ``self.inner_lr``."""
        eta = self.inner_lr if inner_lr is None else inner_lr

        def step(theta, _):
            g = jax.grad(self.cluster_loss)(theta, x, y, mask)
            if self.first_order:
                g = jax.lax.stop_gradient(g)
            return jax.tree.map(lambda t, gi: t - eta * gi, theta, g), None

        theta, _ = jax.lax.scan(step, params, None, length=self.inner_steps,
                                unroll=self.inner_steps <= 8)
        return theta

    def bucket_sums(self, params, alpha, bucket, inner_lr=None):
        """(sum_i w_i [alpha L_i(theta) + (1-alpha) L_i(theta_c^k)], sum_i w_i)
        over the clusters of one bucket, clusters in parallel."""
        if self.inner_steps == 0:   # theta_c^0 = theta: R_0 is the pooled loss, row by row
            wm = (bucket["w"] * bucket["mask"]).reshape(-1)
            return jnp.sum(wm * self.row_losses(params, bucket)), jnp.sum(wm)

        def one_cluster(x, y, mask, w):
            wm = w * mask
            pooled = self.observation_losses(params, x, y)
            adapted = self.observation_losses(self.adapt(params, x, y, wm, inner_lr), x, y)
            return jnp.sum(wm * (alpha * pooled + (1 - alpha) * adapted)), jnp.sum(wm)

        num, den = jax.vmap(one_cluster)(bucket["x"], bucket["y"], bucket["mask"], bucket["w"])
        return jnp.sum(num), jnp.sum(den)

    def __call__(self, params, alpha, buckets, inner_lr=None):
        """R_k(theta) over all buckets."""
        sums = [self.bucket_sums(params, alpha, b, inner_lr) for b in buckets]
        return sum(s[0] for s in sums) / sum(s[1] for s in sums)

    def pooled(self, params, buckets):
        """Weighted mean of L_i(theta): the loss of the prediction model alone."""
        num = den = 0.0
        for b in buckets:
            wm = (b["w"] * b["mask"]).reshape(-1)
            num = num + jnp.sum(wm * self.row_losses(params, b))
            den = den + jnp.sum(wm)
        return num / den

    def row_losses(self, params, bucket):
        """L_i(theta) of every slot of a bucket, flattened (clusters x
        width): the prediction model on all its rows in one pass."""
        x = jax.tree.map(lambda a: a.reshape((a.shape[0] * a.shape[1],) + a.shape[2:]), bucket["x"])
        return self.observation_losses(params, x, bucket["y"].reshape(-1))


def observation_weights(cluster: np.ndarray, weights=None,
                        equal_clusters: bool = False) -> np.ndarray:
    """w_i of R_k: the case weights (``weights``: None for 1 per row, or one
    number >= 0 per row), divided by their cluster's sum when
    ``equal_clusters`` (every cluster weighs the same; without case weights
    w_i = 1/n_c).  A cluster whose case weights are all 0 keeps weight 0."""
    cluster = np.asarray(cluster)
    if weights is None:
        w = np.ones(len(cluster))
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != (len(cluster),) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"weights must be one finite number >= 0 per observation "
                             f"({len(cluster)}), got {w.size}")
        from rfp.data import normalise_weights
        w = normalise_weights(w)   # R_k is scale-free in w; this keeps float32 from underflowing
    if equal_clusters:
        _, inv = np.unique(cluster, return_inverse=True)
        inv = inv.reshape(-1)
        sums = np.bincount(inv, weights=w)
        w = np.divide(w, sums[inv], out=np.zeros_like(w), where=sums[inv] > 0)
    return w


def floats_as(tree, dtype):
    """The floating-point leaves of a pytree cast to ``dtype`` (None: kept);
    integer and boolean leaves are left alone."""
    if dtype is None:
        return tree

    def cast(a):
        a = np.asarray(a) if not isinstance(a, jax.Array) else a
        return a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a
    return jax.tree.map(cast, tree)


def gather(buckets: list[Bucket], x, y: np.ndarray, w: np.ndarray, dtype=None) -> list[dict]:
    """Padded device arrays per bucket: x (any pytree with a leading
    observation axis), y, mask and weights, each (clusters, width, ...);
    floating-point arrays in ``dtype`` when given (training in float32)."""
    out = []
    for b in buckets:
        out.append(floats_as({
            "x": jax.tree.map(lambda a: np.asarray(a)[b.index], x),
            "y": y[b.index],
            "mask": b.mask,
            "w": w[b.index] * b.mask,
        }, dtype))
    return [jax.tree.map(jnp.asarray, b) for b in out]
