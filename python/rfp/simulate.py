"""Data-generating processes with known truth.

``tragic_triad``: the one-dimensional design of the papers (Fig. 5 and 9 of
"Regularizing the Forward Pass"): a v-shaped conditional mean m(x) = |x| shared
by all clusters, cluster-specific covariate distributions x ~ N(mu_c, s^2)
with mu_c ~ N(0, tau^2), and cluster-specific deviations in the tails,
b_c * max(|x| - knot, 0) with b_c ~ N(0, sd_tail^2), independent of mu_c.
Low overlap: small s relative to tau.  Because E[b_c] = 0, the conditional
mean for a new cluster is m(x).

``zero_mean=True`` shifts each cluster's function by its own mean outcome
k_c = E[|x| + b_c tail(x) | c], so every cluster's mean outcome is zero and
cluster fixed effects cannot help ("Generalizing Across Clusters", 2.3).  The
conditional mean for a new cluster is then |x| - E[k(mu) | x], in closed form
because mu | x is normal.

``clustered_means``: the d-dimensional version, clusters differing in their
covariate means, mu_c ~ N(0, tau^2 I_d), m(x) = |a'x| with a = 1/sqrt(d).

Each returns a ``Simulation``: an Arrow table with columns y, x (x1..xd), cluster
and mu (the true conditional mean at each row), and ``truth(x)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
from scipy.stats import norm


@dataclass
class Simulation:
    data: pa.Table
    truth: Callable          # x (n,) or (n, d) -> E[y | x] for a new cluster
    x_names: list
    settings: dict


def folded_normal_mean(m, v):
    """E|Z| for Z ~ N(m, v)."""
    s = np.sqrt(v)
    return s * np.sqrt(2 / np.pi) * np.exp(-m ** 2 / (2 * v)) + m * (1 - 2 * norm.cdf(-m / s))


def _tail(u, knot):
    return np.maximum(np.abs(u) - knot, 0.0)


def _expected_tail(mu, s, knot, nodes=64):
    """E[max(|x| - knot, 0)] for x ~ N(mu, s^2), by Gauss-Hermite quadrature."""
    z, wq = np.polynomial.hermite_e.hermegauss(nodes)
    wq = wq / wq.sum()
    return _tail(mu[:, None] + s * z[None, :], knot) @ wq


def tragic_triad(n_clusters: int = 20, n_per_cluster: int = 30, overlap: str = "low",
                 zero_mean: bool = False, tau: float = 1.5, sd_tail: float = 1.5,
                 knot: float = 1.0, noise: float = 0.2, seed: int = 0) -> Simulation:
    """One-dimensional tragic triad; ``overlap`` is 'low' (s = 0.25) or 'high' (s = 1)."""
    s = {"low": 0.25, "high": 1.0}.get(overlap)
    if s is None:
        raise ValueError(f"overlap must be 'low' or 'high', got {overlap!r}")
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, tau, n_clusters)
    b = rng.normal(0, sd_tail, n_clusters)
    cluster = np.repeat(np.arange(n_clusters), n_per_cluster)
    x = mu[cluster] + s * rng.normal(size=cluster.size)
    f = np.abs(x) + b[cluster] * _tail(x, knot)
    if zero_mean:
        k = folded_normal_mean(mu, s ** 2) + b * _expected_tail(mu, s, knot)
        f = f - k[cluster]
        shrink = tau ** 2 / (tau ** 2 + s ** 2)

        def truth(u):
            u = np.asarray(u, dtype=float).reshape(-1)
            # x' ~ N(mu, s^2) with mu | x ~ N(shrink x, shrink s^2)
            return np.abs(u) - folded_normal_mean(shrink * u, s ** 2 + shrink * s ** 2)
    else:
        def truth(u):
            return np.abs(np.asarray(u, dtype=float).reshape(-1))
    y = f + noise * rng.normal(size=cluster.size)
    table = pa.table({"y": y, "x": x, "cluster": cluster, "mu": truth(x)})
    settings = dict(design="tragic_triad", n_clusters=n_clusters, n_per_cluster=n_per_cluster,
                    overlap=overlap, zero_mean=zero_mean, tau=tau, sd_tail=sd_tail, knot=knot,
                    noise=noise, seed=seed)
    return Simulation(table, truth, ["x"], settings)


def clustered_means(n_clusters: int = 25, n_per_cluster: int = 25, dim: int = 5,
                    tau: float = 1.0, s: float = 0.5, sd_tail: float = 1.0, knot: float = 1.0,
                    noise: float = 0.2, seed: int = 0) -> Simulation:
    """d-dimensional design: x ~ N(mu_c, s^2 I_d), mu_c ~ N(0, tau^2 I_d),
    y = |a'x| + b_c max(|a'x| - knot, 0) + noise, a = 1/sqrt(d)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, tau, (n_clusters, dim))
    b = rng.normal(0, sd_tail, n_clusters)
    cluster = np.repeat(np.arange(n_clusters), n_per_cluster)
    x = mu[cluster] + s * rng.normal(size=(cluster.size, dim))
    a = np.full(dim, 1 / np.sqrt(dim))

    def truth(u):
        return np.abs(np.asarray(u, dtype=float).reshape(-1, dim) @ a)

    index = x @ a
    y = np.abs(index) + b[cluster] * _tail(index, knot) + noise * rng.normal(size=cluster.size)
    names = [f"x{j + 1}" for j in range(dim)]
    table = pa.table({"y": y, **{n: x[:, j] for j, n in enumerate(names)},
                      "cluster": cluster, "mu": truth(x)})
    settings = dict(design="clustered_means", n_clusters=n_clusters, n_per_cluster=n_per_cluster,
                    dim=dim, tau=tau, s=s, sd_tail=sd_tail, knot=knot, noise=noise, seed=seed)
    return Simulation(table, truth, names, settings)


def held_out(sim: Simulation, n_clusters: int, seed: int) -> Simulation:
    """Fresh clusters from the same design (different seed): the test set for
    generalisation to clusters not seen in training."""
    fn = tragic_triad if sim.settings["design"] == "tragic_triad" else clustered_means
    settings = {k: v for k, v in sim.settings.items() if k != "design"}
    settings.update(n_clusters=n_clusters, seed=seed)
    return fn(**settings)
