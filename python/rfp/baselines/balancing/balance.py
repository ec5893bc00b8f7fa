"""``rfp.balance``: balancing weights from a table, by the estimator named
(entropy, hierarchical, cluster), with covariates split by level."""
from __future__ import annotations

import pyarrow as pa

from rfp.baselines.balancing.tables import (
    cluster_balance_from_table,
    entropy_balance_from_table,
    hierarchical_balance_from_table,
)
from rfp.data import as_table, encode_clusters
from rfp.effects.reading import treatment_is_clustered
from rfp.settings import check, validate
from rfp.simulate import Simulation


def balance(data, d, x, cluster=None, method: str = "entropy", **kwargs):
    """Balancing weights for the controls, with the balance table and ESS.

    Parameters
    ----------
    data : Arrow-compatible table or ``rfp.simulate.Simulation``
    d : str
        Binary (0/1 or boolean) treatment column.
    x : str or list of str
        Covariates to balance (numeric).
    cluster : str, optional
        Cluster column; needed by "hierarchical" and "cluster".
    method : {"entropy", "hierarchical", "cluster"}
        "entropy": Hainmueller's entropy balancing
        (``entropy_balance_from_table``); "hierarchical": balance within and
        across clusters (``lam``, default 1); "cluster": weights on control
        clusters with an ICC-aware dispersion penalty (needs ``icc``;
        ``cluster_x`` defaults to the columns of ``x`` constant within every
        cluster, the rest are averaged within cluster).
    **kwargs
        Passed to the balancing function (e.g. ``na_action``, ``lam``,
        ``icc``, ``cluster_x``). ``weights``: case (sampling) weights, a
        column name or one number >= 0 per row, "entropy" only (the target
        is the weighted treated means and the controls' base weights are
        their case weights; ``entropy_balance_from_table``); the other
        methods raise NotImplementedError.

    Returns
    -------
    BalancingFit
        ``weights`` per kept row, ``balance`` (Arrow table; ``summary()`` /
        ``to_pandas()`` give pandas), ``ess`` and the solver's ``result``.
    """
    check("method", method)
    kwargs = validate({"method": method, **kwargs}, f"balance:{method}", data=data)
    kwargs.pop("method")
    if isinstance(data, Simulation):
        data = data.data
    x = [x] if isinstance(x, str) else list(x)
    if method == "entropy":
        return entropy_balance_from_table(data, d, x, **kwargs)
    if kwargs.pop("weights", None) is not None:
        raise NotImplementedError(
            f"weights (case weights) are supported by balance(method='entropy') only; "
            f"method={method!r} does not take them (its weights are solved per cluster)")
    if cluster is None:
        raise ValueError(f"balance(method={method!r}) needs cluster= (the cluster column)")
    if method == "hierarchical":
        return hierarchical_balance_from_table(data, d, x, cluster, kwargs.pop("lam", 1.0), **kwargs)
    if method == "cluster":
        if "icc" not in kwargs:
            raise ValueError("balance(method='cluster') needs icc= (the outcome's intraclass "
                             "correlation, in [0, 1]) for its dispersion penalty")
        icc = kwargs.pop("icc")
        if "cluster_x" not in kwargs:
            x, kwargs["cluster_x"] = split_by_level(as_table(data), x, cluster)
        return cluster_balance_from_table(data, d, x, cluster, icc, **kwargs)
    raise ValueError(f"method must be 'entropy', 'hierarchical' or 'cluster', got {method!r}")


def split_by_level(table: pa.Table, x, cluster: str):
    """(individual covariates, cluster covariates): a column constant within
    every cluster is a cluster covariate."""
    codes, _ = encode_clusters(table.column(cluster))
    individual, cluster_level = [], []
    for name in x:
        v = table.column(name).to_numpy(zero_copy_only=False).astype(float)
        (cluster_level if treatment_is_clustered(v, codes) else individual).append(name)
    return individual, cluster_level
