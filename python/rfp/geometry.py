"""High-dimensional geometry of clustered samples (Fig. 7 of "Regularizing
the Forward Pass", after Balestriero et al. 2021).

* ``in_convex_hull``: is each test point a convex combination of the training
  points?  A linear feasibility problem per point (HiGHS through scipy).
* ``other_cluster_neighbours``: the fraction of each test point's k nearest
  training neighbours that come from a different cluster.
* ``dimension_study``: both, as the dimension grows, for 25 clusters x 25
  observations whose clusters differ only in their mean.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linprog


def in_convex_hull(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Boolean per test row: exists lambda >= 0, sum lambda = 1,
    train' lambda = test_row."""
    train, test = np.atleast_2d(train), np.atleast_2d(test)
    n = train.shape[0]
    a_eq = np.vstack([train.T, np.ones((1, n))])
    out = np.empty(test.shape[0], dtype=bool)
    for i, point in enumerate(test):
        res = linprog(np.zeros(n), A_eq=a_eq, b_eq=np.append(point, 1.0), bounds=(0, None),
                      method="highs")
        out[i] = res.status == 0
    return out


def other_cluster_neighbours(train: np.ndarray, train_cluster, test: np.ndarray,
                             test_cluster, k: int = 5) -> np.ndarray:
    """Fraction of the k nearest training points (Euclidean) of each test
    point that belong to another cluster."""
    train, test = np.atleast_2d(train), np.atleast_2d(test)
    d2 = (test ** 2).sum(1)[:, None] - 2 * test @ train.T + (train ** 2).sum(1)[None, :]
    nearest = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return (np.asarray(train_cluster)[nearest] != np.asarray(test_cluster)[:, None]).mean(1)


def dimension_study(dims=(1, 2, 4, 8, 16, 32, 64), n_clusters: int = 25, n_per_cluster: int = 25,
                    n_test: int = 100, tau: float = 1.0, s: float = 0.5, k: int = 5,
                    seed: int = 0) -> dict:
    """For each dimension d: training data of n_clusters x n_per_cluster
    with x ~ N(mu_c, s^2 I_d), mu_c ~ N(0, tau^2 I_d); test points are new
    draws from randomly chosen training clusters.  Returns columns dim,
    hull_share (share of test points in the training hull) and
    other_cluster (mean fraction of the k nearest neighbours from another
    cluster), plus the same two for an i.i.d. sample of the same size
    (no clusters, same marginal variance) as a reference."""
    rng = np.random.default_rng(seed)
    rows = {"dim": [], "hull_share": [], "other_cluster": [], "hull_share_iid": []}
    for d in dims:
        mu = rng.normal(0, tau, (n_clusters, d))
        cluster = np.repeat(np.arange(n_clusters), n_per_cluster)
        train = mu[cluster] + s * rng.normal(size=(cluster.size, d))
        test_cluster = rng.integers(0, n_clusters, n_test)
        test = mu[test_cluster] + s * rng.normal(size=(n_test, d))
        sd = np.sqrt(tau ** 2 + s ** 2)
        iid_train = sd * rng.normal(size=train.shape)
        iid_test = sd * rng.normal(size=test.shape)
        rows["dim"].append(d)
        rows["hull_share"].append(float(in_convex_hull(train, test).mean()))
        rows["other_cluster"].append(float(other_cluster_neighbours(train, cluster, test, test_cluster, k).mean()))
        rows["hull_share_iid"].append(float(in_convex_hull(iid_train, iid_test).mean()))
    return rows
