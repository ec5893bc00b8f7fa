"""Minibatches of clusters (``batch_clusters = B``).

Each outer step uses B of the training clusters, drawn without replacement
within an epoch.  The draw is stratified by size bucket, so that every step
has the same array shapes (one compiled program): bucket b, holding n_b of
the G clusters, gives k_b clusters per step (B split in proportion to n_b,
largest remainders, at least one per bucket) and runs through a fresh random
permutation of its clusters every n_b / k_b steps.  The weights of bucket b's
drawn clusters are multiplied by n_b / k_b, so that the numerator and the
denominator of R_k on a minibatch are unbiased for the full-batch ones; with
one bucket whose clusters B divides, the minibatch gradients of an epoch
average exactly to the full-batch gradient (equal cluster weights).
"""
from __future__ import annotations

import jax
import numpy as np


def per_bucket(counts, batch: int) -> np.ndarray:
    """k_b: ``batch`` clusters split across buckets in proportion to their
    counts n_b (largest remainders), at least one and at most n_b each."""
    counts = np.asarray(counts, dtype=np.int64)
    share = batch * counts / counts.sum()
    k = np.clip(np.floor(share).astype(np.int64), 1, counts)
    while k.sum() > batch and np.any(k > 1):      # the floor of one per bucket overshot
        k[np.argmax(np.where(k > 1, k - share, -np.inf))] -= 1
    while k.sum() < min(batch, counts.sum()):     # largest remainders
        k[np.argmax(np.where(k < counts, share - k, -np.inf))] += 1
    return k


class ClusterSampler:
    """Per bucket, successive blocks of k_b positions from a random
    permutation of its n_b clusters, a new permutation once one is used up
    (the last, incomplete block of an epoch is dropped)."""

    def __init__(self, counts, batch: int, seed: int):
        self.counts = np.asarray(counts, dtype=np.int64)
        self.k = per_bucket(self.counts, batch)
        self.rng = np.random.default_rng(seed)
        self.queue = [np.empty(0, dtype=np.int64) for _ in self.counts]

    def scales(self) -> np.ndarray:
        """n_b / k_b: the weight multiplier of bucket b's drawn clusters."""
        return self.counts / self.k

    def draw(self, steps: int) -> list[np.ndarray]:
        """Positions (within each bucket) for ``steps`` outer steps: one
        (steps, k_b) int array per bucket."""
        out = []
        for b, (n, k) in enumerate(zip(self.counts, self.k)):
            rows = []
            for _ in range(steps):
                if len(self.queue[b]) < k:
                    self.queue[b] = self.rng.permutation(n)
                rows.append(self.queue[b][:k])
                self.queue[b] = self.queue[b][k:]
            out.append(np.stack(rows))
        return out


def select(buckets, picks, scales):
    """The minibatch as buckets: bucket b's clusters at positions picks[b],
    their weights times scales[b] (a number, or one per picked cluster as a
    column); traceable: used inside the compiled step."""
    out = []
    for b, idx, s in zip(buckets, picks, scales):
        sub = jax.tree.map(lambda a: a[idx], b)
        sub["w"] = sub["w"] * s
        out.append(sub)
    return out
