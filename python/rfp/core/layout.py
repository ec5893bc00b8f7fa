"""Observations -> clusters: padded size buckets with masks.

Clusters are grouped by size into buckets, each stored as a (clusters, width)
index array with a mask.  Start: one bucket per power-of-two width (sizes in
(w/2, w]), so padding at most doubles the real data whatever the skew (one
cluster of 10,000 beside 500 of 10 allocates 500 x 16 + 1 x 16,384 rows, not
501 x 10,000).  Then, because every bucket is a separately compiled shape,
adjacent buckets are merged, cheapest first, while the padded total stays
within ``max_padding`` (1.5) times the real rows: fewer compiled shapes, and
never more padding than the power-of-two start or 1.5x, whichever is larger.
Padded slots point at row 0 and carry mask 0, so they never enter a loss or a
gradient.

Layout by cost.  On an accelerator each bucket is also one more launch per
step, which at small sizes costs more than the padding it saves (an H200,
200 clusters: 5 buckets of 9k padded rows 4.0 ms per step, one bucket of 30k
rows 1.4 ms; at 10,000 clusters the buckets win, 26 ms against 240 ms).  So
the cost of a layout is counted as padded rows + ``bucket_cost`` rows per
bucket, and after the merges above, further merges are made while they lower
that cost and the padded total stays within ``max(2 x real rows, SMALL)``
(the memory bound; below SMALL rows memory does not matter).  ``bucket_cost``
is 0 on a CPU (where a bucket's launch is cheap: the layout is the one
above) and ``BUCKET_COST`` rows on an accelerator, from those measurements.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Bucket:
    index: np.ndarray   # (clusters, width) int: rows of the data, 0 where padded
    mask: np.ndarray    # (clusters, width) float: 1 real, 0 padding
    clusters: np.ndarray  # (clusters,) cluster codes in this bucket


def bucket_width(n: int) -> int:
    """Smallest power of two >= n."""
    return 1 << max(int(n) - 1, 0).bit_length()


BUCKET_COST = 50_000    # rows a bucket's launch is worth on an accelerator (H200 table above)
SMALL = 1 << 18         # padded rows below which the memory bound is not applied


def default_bucket_cost() -> int:
    """0 on a CPU, ``BUCKET_COST`` on a GPU or TPU."""
    import jax
    return 0 if jax.default_backend() == "cpu" else BUCKET_COST


def layout_cost(widths: np.ndarray, bucket_cost: float) -> float:
    """Padded rows plus ``bucket_cost`` rows per bucket (distinct width)."""
    return float(np.sum(widths)) + bucket_cost * len(np.unique(widths))


def bucket_widths(sizes: np.ndarray, max_padding: float = 1.5,
                  bucket_cost: float = 0.0) -> np.ndarray:
    """Padded width for each cluster size: the next power of two, then
    adjacent width classes merged (cheapest first) while the padded total
    stays within max_padding times sum(sizes), then (``bucket_cost`` > 0)
    while a merge lowers ``layout_cost`` within the memory bound."""
    sizes = np.asarray(sizes, dtype=np.int64)
    widths = np.left_shift(1, np.ceil(np.log2(np.maximum(sizes, 1))).astype(np.int64))
    widths = np.where(widths < sizes, 2 * widths, widths)   # guard against rounding
    classes = sorted(set(widths.tolist()))
    count = {w: int(np.sum(widths == w)) for w in classes}
    budget = max_padding * float(np.sum(sizes)) - sum(w * c for w, c in count.items())

    def cheapest_merge():
        """(i, extra padded rows) of merging class i into class i + 1, the
        cheapest adjacent pair (its clusters padded to the wider width)."""
        costs = [count[a] * (b - a) for a, b in zip(classes[:-1], classes[1:])]
        i = int(np.argmin(costs))
        return i, costs[i]

    def merge(i):
        a, b = classes[i], classes[i + 1]
        count[b] += count.pop(a)
        widths[widths == a] = b
        classes.pop(i)

    while len(classes) > 1:
        i, extra = cheapest_merge()
        if extra > budget:
            break
        budget -= extra
        merge(i)
    bound = max(2.0 * float(np.sum(sizes)), SMALL)
    while bucket_cost > 0 and len(classes) > 1:
        i, extra = cheapest_merge()
        if extra >= bucket_cost or np.sum(widths) + extra > bound:
            break
        merge(i)
    return widths


def make_buckets(cluster: np.ndarray, rows: np.ndarray | None = None,
                 max_padding: float = 1.5, bucket_cost: float | None = None) -> list[Bucket]:
    """Group the rows (all, or the given subset) of each cluster into buckets
    (``bucket_cost`` None: ``default_bucket_cost()`` for the backend)."""
    cluster = np.asarray(cluster)
    rows = np.arange(len(cluster)) if rows is None else np.asarray(rows)
    order = rows[np.argsort(cluster[rows], kind="stable")]
    codes, starts, sizes = np.unique(cluster[order], return_index=True, return_counts=True)
    if bucket_cost is None:
        bucket_cost = default_bucket_cost()
    widths = bucket_widths(sizes, max_padding, bucket_cost)
    buckets = []
    for w in np.unique(widths):
        members = np.flatnonzero(widths == w)
        # slot j of cluster m holds sorted row starts[m] + j while j < sizes[m]
        slot = np.arange(w)[None, :]
        real = slot < sizes[members][:, None]
        position = np.minimum(starts[members][:, None] + slot, len(order) - 1)
        index = np.where(real, order[position], 0).astype(np.int64)
        buckets.append(Bucket(index, real.astype(np.float64), codes[members]))
    return buckets


def padded_rows(buckets: list[Bucket]) -> int:
    return int(sum(b.index.size for b in buckets))
