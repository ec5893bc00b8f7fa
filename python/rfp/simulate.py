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

``text_clusters``: titles whose words identify their cluster, with word
effects that differ by cluster and interactions a linear bag of words
cannot fit (issue 21).

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


TOPIC_WORDS = tuple(
    "harbour meadow castle village orchard canal quarry abbey market bridge forest chapel "
    "mill garden valley tower cottage station lake ridge marsh field street palace island "
    "temple coast farm shore hill cliff road pier moor glen fen dale heath wood barn".split())
SIGNAL_WORDS = ("red", "old", "dog", "sun")


def text_clusters(n_clusters: int = 60, n_per_cluster: int = 25, topics: int = 6,
                  tau: float = 1.0, sd_word: float = 0.7, noise: float = 0.5,
                  seed: int = 0) -> Simulation:
    """Clustered text with known truth (the text design of issue 21).

    Each cluster c writes with its own ``topics`` words (drawn from
    ``TOPIC_WORDS``) and has an effect u_c ~ N(0, tau^2): words identify the
    cluster, so a flexible model can fit u_c through them and fail on new
    clusters.  A row's title holds one or two of its cluster's topic words
    and each of ``SIGNAL_WORDS`` with probability 0.3; x1 ~ N(0, 1).  The
    outcome

        y = red - 0.8 dog + 1.5 red*old + sun*x1 + 0.3 x1 + u_c + b_c old + e,

    b_c ~ N(0, sd_word^2) (the effect of "old" differs by cluster, mean 0),
    e ~ N(0, noise^2).  For a new cluster E[y | title, x1] is the first five
    terms (``truth(titles, x1)``, column ``mu``): nonlinear in the words, so
    a linear bag of words cannot reach it."""
    rng = np.random.default_rng(seed)
    n = n_clusters * n_per_cluster
    cluster = np.repeat(np.arange(n_clusters), n_per_cluster)
    own = np.stack([rng.choice(len(TOPIC_WORDS), topics, replace=False)
                    for _ in range(n_clusters)])
    u = rng.normal(0, tau, n_clusters)
    b = rng.normal(0, sd_word, n_clusters)
    signal = rng.random((n, len(SIGNAL_WORDS))) < 0.3
    x1 = rng.normal(size=n)
    titles = []
    for i in range(n):
        words = [TOPIC_WORDS[j] for j in rng.choice(own[cluster[i]], rng.integers(1, 3),
                                                    replace=False)]
        words += [w for w, on in zip(SIGNAL_WORDS, signal[i]) if on]
        titles.append(" ".join(rng.permutation(words)))

    def truth(texts, x):
        has = np.array([[w in t.split() for w in SIGNAL_WORDS] for t in texts], dtype=float)
        x = np.asarray(x, dtype=float)
        red, old, dog, sun = has.T
        return red - 0.8 * dog + 1.5 * red * old + sun * x + 0.3 * x

    mu = truth(titles, x1)
    y = mu + u[cluster] + b[cluster] * signal[:, 1] + noise * rng.normal(size=n)
    table = pa.table({"y": y, "title": titles, "x1": x1, "cluster": cluster, "mu": mu})
    settings = dict(design="text_clusters", n_clusters=n_clusters, n_per_cluster=n_per_cluster,
                    topics=topics, tau=tau, sd_word=sd_word, noise=noise, seed=seed)
    return Simulation(table, truth, ["x1"], settings)


def held_out(sim: Simulation, n_clusters: int, seed: int) -> Simulation:
    """Fresh clusters from the same design (different seed): the test set for
    generalisation to clusters not seen in training."""
    fn = {"tragic_triad": tragic_triad, "clustered_means": clustered_means,
          "text_clusters": text_clusters}[sim.settings["design"]]
    settings = {k: v for k, v in sim.settings.items() if k != "design"}
    settings.update(n_clusters=n_clusters, seed=seed)
    return fn(**settings)


# ----------------------------------------------------------------------------
# cluster_trial: treatment assigned to whole clusters (issue 4)

def _logistic(u):
    return 1.0 / (1.0 + np.exp(-u))


def cluster_trial(n_strata: int = 4, clusters_per_stratum: int = 10, n_per_cluster: int = 20,
                  effect: str = "constant", overlap: str = "high", tau: float = 1.0,
                  kappa: float = 0.5, sd_cluster_effect: float = 0.5, noise: float = 1.0,
                  seed: int = 0) -> Simulation:
    """A stratified cluster-level treatment assignment with selection on a
    cluster covariate (docs/DESIGN.md, "Effects"; the setting of "Regularizing the
    Forward Pass", sec. 1: treatment above the unit, controls at both levels).

    Clusters c in strata s = 1..S (``clusters_per_stratum`` each):

        z_c    = δ_s + v_c,      δ_s = linspace(-1, 1, S),  v_c ~ N(0, 0.75²)
        D_c    ~ Bernoulli(e(z_c)),   e(z) = logistic(γ z),
                 γ = 0.5 (overlap="high"), 2.0 (overlap="low") or 0
                 (overlap="randomized": a cluster-randomized trial, e = 1/2)
        x_icj  = a_j z_c + u_cj + ε_icj,   a = (0.8, -0.5),  u ~ N(0, 0.5²),  ε ~ N(0, 1)
        Y_ic(0) = f(x, z) + b_c + noise·η_ic,   b_c ~ N(0, sd_cluster_effect²)
        f(x, z) = z + 0.5 z² + sin(x1) + 0.25 x1 x2
        τ(x)   = τ  (effect="constant")  or  τ + κ·x1  (effect="heterogeneous")
        Y = Y(0) + D τ(x)

    Treatment is randomised within strata with probability e(z_c), so a
    naive difference in means is biased (f increases with z); conditional on
    X = (x1, x2, z) it is as good as random, and E[D | X] = e(z) exactly.
    Assignment is redrawn (from the same generator) until at least two
    clusters are treated and two are not.

    The truth, in ``settings["truth"]``: population values computed from the
    design (Gauss–Hermite quadrature over z ~ the mixture of strata):
    ATE = E τ(X), ATT = E[τ(X) | D = 1] and PLM = E[e(1-e) τ(X)] / E[e(1-e)]
    (the variance-weighted average the partially linear model's τ estimates;
    all three equal τ for a constant effect), and their sample analogues
    SATE / SATT over the simulated units; with a constant effect also OLS = τ
    (the estimand of a regression with linear controls). ``truth(x)`` is τ(x) for rows of
    (x1, x2, z). Columns: y, d, x1, x2, z, cluster, stratum, and the truth
    columns tau_i, e (true propensity), mu0 = E[Y(0) | x, z] (without b_c).
    """
    if effect not in ("constant", "heterogeneous"):
        raise ValueError(f"effect must be 'constant' or 'heterogeneous', got {effect!r}")
    gamma = {"high": 0.5, "low": 2.0, "randomized": 0.0}.get(overlap)
    if gamma is None:
        raise ValueError(f"overlap must be 'low', 'high' or 'randomized', got {overlap!r}")
    if n_strata < 1 or clusters_per_stratum < 1 or n_per_cluster < 1:
        raise ValueError("n_strata, clusters_per_stratum and n_per_cluster must be positive")
    n_clusters = n_strata * clusters_per_stratum
    if n_clusters < 4:
        raise ValueError("cluster_trial needs at least 4 clusters (two treated, two not)")
    rng = np.random.default_rng(seed)
    sd_z, a, sd_u = 0.75, np.array([0.8, -0.5]), 0.5
    delta = np.linspace(-1.0, 1.0, n_strata) if n_strata > 1 else np.zeros(1)
    stratum_c = np.repeat(np.arange(n_strata), clusters_per_stratum)
    z_c = delta[stratum_c] + sd_z * rng.normal(size=n_clusters)
    e_c = _logistic(gamma * z_c)
    while True:
        d_c = (rng.random(n_clusters) < e_c).astype(float)
        if 2 <= d_c.sum() <= n_clusters - 2:
            break
    u_c = sd_u * rng.normal(size=(n_clusters, 2))
    b_c = sd_cluster_effect * rng.normal(size=n_clusters)

    cluster = np.repeat(np.arange(n_clusters), n_per_cluster)
    z = z_c[cluster]
    x = a[None, :] * z[:, None] + u_c[cluster] + rng.normal(size=(cluster.size, 2))
    mu0 = z + 0.5 * z ** 2 + np.sin(x[:, 0]) + 0.25 * x[:, 0] * x[:, 1]
    k = kappa if effect == "heterogeneous" else 0.0

    def cate(u):
        u = np.asarray(u, dtype=float).reshape(-1, 3)
        return tau + k * u[:, 0]

    tau_i = cate(np.column_stack([x, z]))
    d = d_c[cluster]
    y = mu0 + b_c[cluster] + noise * rng.normal(size=cluster.size) + d * tau_i

    # population truths: E[x1 | z] = a1 z, so every estimand is tau + k a1 E_w[z]
    nodes, wq = np.polynomial.hermite_e.hermegauss(64)
    zq = (delta[:, None] + sd_z * nodes[None, :]).reshape(-1)
    wz = np.tile(wq / wq.sum(), delta.size) / delta.size
    eq = _logistic(gamma * zq)

    def weighted_z(w):
        return float(np.sum(wz * w * zq) / np.sum(wz * w))

    truth = {
        "ATE": float(tau + k * a[0] * weighted_z(np.ones_like(zq))),
        "ATT": float(tau + k * a[0] * weighted_z(eq)),
        "PLM": float(tau + k * a[0] * weighted_z(eq * (1 - eq))),
        "SATE": float(tau_i.mean()),
        "SATT": float(tau_i[d == 1].mean()),
    }
    if k == 0:
        # OLS with linear controls (compare()'s fixed_effects row) estimates a
        # regression-weighted average of effects; with a constant effect it is τ
        # (under heterogeneity its weights depend on the linear projection: not given)
        truth["OLS"] = float(tau)
    table = pa.table({
        "y": y, "d": d, "x1": x[:, 0], "x2": x[:, 1], "z": z, "cluster": cluster,
        "stratum": stratum_c[cluster], "tau_i": tau_i, "e": e_c[cluster], "mu0": mu0,
    })
    settings = dict(design="cluster_trial", n_strata=n_strata,
                    clusters_per_stratum=clusters_per_stratum, n_per_cluster=n_per_cluster,
                    effect=effect, overlap=overlap, tau=tau, kappa=kappa, gamma=gamma,
                    sd_cluster_effect=sd_cluster_effect, noise=noise, seed=seed,
                    treatment="d", cluster="cluster", strata="stratum", truth=truth)
    return Simulation(table, cate, ["x1", "x2", "z"], settings)
