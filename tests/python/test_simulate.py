"""The designs' stated truths hold in large simulated samples (tolerance
from cluster-robust standard errors)."""
import numpy as np
import pytest

from rfp.simulate import clustered_means, tragic_triad


def binned_check(x, y, truth, cluster, edges):
    """max |binned mean of (y - truth)| / its cluster-robust SE."""
    worst = 0.0
    resid = y - truth
    for lo, hi in zip(edges[:-1], edges[1:]):
        r = (x >= lo) & (x < hi)
        sums = np.bincount(cluster[r], resid[r])
        n = r.sum()
        mean = sums.sum() / n
        counts = np.bincount(cluster[r], minlength=len(sums))
        se = np.sqrt(np.sum((sums - counts * mean) ** 2)) / n
        worst = max(worst, abs(mean) / se)
    return worst


@pytest.mark.parametrize("overlap,zero_mean", [("low", False), ("high", False), ("low", True), ("high", True)])
def test_tragic_triad_truth_is_the_conditional_mean_for_a_new_cluster(overlap, zero_mean):
    s = tragic_triad(n_clusters=4000, n_per_cluster=10, overlap=overlap, zero_mean=zero_mean, seed=11)
    x, y, c = (s.data[k].to_numpy() for k in ("x", "y", "cluster"))
    assert binned_check(x, y, s.truth(x), c, np.linspace(-3, 3, 9)) < 4.0


def test_zero_mean_variant_gives_every_cluster_mean_outcome_zero():
    s = tragic_triad(n_clusters=50, n_per_cluster=4000, zero_mean=True, noise=0.0, seed=2)
    c, y = s.data["cluster"].to_numpy(), s.data["y"].to_numpy()
    means = np.bincount(c, y) / np.bincount(c)
    sds = np.sqrt(np.bincount(c, y ** 2) / np.bincount(c) - means ** 2)
    assert np.all(np.abs(means) < 4 * sds / np.sqrt(4000))


def test_clustered_means_truth():
    s = clustered_means(n_clusters=3000, n_per_cluster=10, dim=3, seed=5)
    x = np.column_stack([s.data[n].to_numpy() for n in s.x_names])
    index = x.mean(1) * np.sqrt(3)
    assert binned_check(index, s.data["y"].to_numpy(), s.truth(x), s.data["cluster"].to_numpy(),
                        np.linspace(-2, 2, 7)) < 4.0
