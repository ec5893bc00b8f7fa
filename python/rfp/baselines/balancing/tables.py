"""The balancing estimators read from a table (``*_from_table``): rows
checked, weights normalised, and the result with its balance table
(``BalancingFit``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rfp import results
from rfp.baselines.balancing.cluster import cluster_balance
from rfp.baselines.balancing.entropy import entropy_balance
from rfp.baselines.balancing.hierarchical import hierarchical_balance
from rfp.data import (
    as_table,
    case_weights,
    check_magnitudes,
    check_weighted_arms,
    drop_missing,
    encode_clusters,
    kept_weights,
    normalise_weights,
    numeric,
    require_columns,
)
from rfp.diagnostics import balance_table, effective_sample_size

__all__ = ["BalancingFit", "entropy_balance_from_table", "hierarchical_balance_from_table",
           "cluster_balance_from_table"]


@dataclass
class BalancingFit:
    """A balancing fit on a table: the estimator's result, unit weights per
    kept row (treated 1, controls summing to the number of treated), the rows
    kept (after na_action="omit"), the balance table and the controls' ESS."""
    result: object
    weights: np.ndarray
    kept: np.ndarray
    balance: pa.Table
    ess: float
    x_names: list

    def summary(self):
        """The balance table as a pandas DataFrame indexed by covariate."""
        out = self.balance.to_pandas()
        return out.set_index(out.columns[0]) if len(out.columns) else out

    def to_pandas(self):
        """The balance table as a pandas DataFrame (one row per covariate)."""
        return self.balance.to_pandas()

    def __repr__(self) -> str:
        rows = self.balance.to_pylist()
        table = results.text_table(rows, list(rows[0])) if rows else "(no covariates)"
        converged = getattr(self.result, "converged", getattr(self.result, "solved", None))
        return "\n".join([
            f"rfp balancing weights: {type(self.result).__name__}, {int(self.kept.sum())} rows, "
            f"effective sample size of the controls {results.number(self.ess, 1)}"
            + ("" if converged is None else f", converged {results.number(bool(converged))}"),
            table,
        ])


def _read(data, treatment, x, cluster=None, cluster_x=(), weight_col=None, na_action="fail"):
    """Checked columns: X (n, p), cluster-level X, base weights, treated (n,)
    bool, cluster codes and labels, kept-row mask. Every error names the column."""
    table = as_table(data)
    x = [x] if isinstance(x, str) else list(x)
    cluster_x = [cluster_x] if isinstance(cluster_x, str) else list(cluster_x)
    if not x and not cluster_x:
        raise ValueError("no covariates: pass x=[...] naming at least one numeric column")
    if na_action not in ("fail", "omit"):
        raise ValueError(f"na_action must be 'fail' or 'omit', got {na_action!r}")
    for name, role in ((treatment, "treatment"), (cluster, "cluster variable")):
        if name is not None and name in [*x, *cluster_x]:
            raise ValueError(f"the {role} '{name}' is also a covariate: remove it from the "
                             f"covariates")
    cols = ([treatment, *x, *cluster_x] + ([cluster] if cluster is not None else [])
            + ([weight_col] if weight_col is not None else []))
    require_columns(table, cols)
    for c in x:
        numeric(table, c, "covariate")
    for c in cluster_x:
        numeric(table, c, "cluster covariate")
    if weight_col is not None:
        numeric(table, weight_col, "base weight")
    dcol = table.column(treatment)
    dt = dcol.type
    if not (pa.types.is_integer(dt) or pa.types.is_floating(dt) or pa.types.is_boolean(dt)):
        seen = np.unique(np.asarray(dcol.drop_null().to_pylist(), dtype=object).astype(str))
        raise ValueError(f"treatment column '{treatment}' must be binary (0/1 or boolean), "
                         f"but has type {dt} with values {seen[:10].tolist()}")

    table, kept = drop_missing(table, cols, na_action)

    d = numeric(table, treatment, "treatment")
    seen = np.unique(d)
    if not np.all(np.isin(seen, [0.0, 1.0])):
        raise ValueError(f"treatment column '{treatment}' must be binary (0/1 or boolean); "
                         f"values seen: {[float(v) if v % 1 else int(v) for v in seen[:10]]}"
                         + (" ..." if seen.size > 10 else ""))
    if seen.size < 2:
        raise ValueError(f"treatment column '{treatment}' is constant (every kept row is "
                         f"{int(seen[0])}): need both treated and control units")
    xs = np.column_stack([numeric(table, c, "covariate") for c in x]) if x else np.zeros((table.num_rows, 0))
    vs = (np.column_stack([numeric(table, c, "cluster covariate") for c in cluster_x])
          if cluster_x else np.zeros((table.num_rows, 0)))
    for j, c in enumerate(x):
        check_magnitudes(xs[:, j], c, "covariate")
    for j, c in enumerate(cluster_x):
        check_magnitudes(vs[:, j], c, "cluster covariate")
    bw = numeric(table, weight_col, "base weight") if weight_col is not None else None
    codes = labels = None
    if cluster is not None:
        codes, labels = encode_clusters(table.column(cluster))
    return xs, vs, bw, d.astype(bool), codes, labels, kept, x, cluster_x


def _unit_weights_att(w: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Scale control weights to sum to the number of treated; treated get 1."""
    out = np.ones(t.size)
    wc = w[~t]
    out[~t] = wc * (t.sum() / wc.sum()) if np.all(np.isfinite(wc)) and wc.sum() > 0 else wc
    return out


def _fit(result, weights, x, t, kept, names, sd):
    ok = np.all(np.isfinite(weights))
    bal = balance_table(x, t, weights, names, sd=sd)  # NaN weights: NaN "after" columns
    return BalancingFit(result, weights, kept, bal,
                        effective_sample_size(weights[~t]) if ok else float("nan"), names)


def entropy_balance_from_table(data, treatment: str, x, base_weights: str | None = None,
                               na_action: str = "fail", sd: str = "treated", weights=None,
                               **kwargs) -> BalancingFit:
    """Entropy balancing (ATT) on a table: ``treatment`` a binary column, ``x``
    covariate columns, ``base_weights`` an optional column of control base
    weights. kwargs go to ``entropy_balance``.

    ``weights``: case (sampling) weights, a column name or one number >= 0
    per row. The target becomes the weighted treated means Σ_T w x / Σ_T w,
    the controls' base weights are multiplied by their case weights, and the
    returned unit weights are w_i for treated rows and control weights
    summing to Σ_T w (a whole-number weight k equals the row repeated k
    times)."""
    table = as_table(data)
    w_all = case_weights(table, weights)
    xs, _, bw, t, _, _, kept, names, _ = _read(table, treatment, x, weight_col=base_weights,
                                               na_action=na_action)
    cw = kept_weights(w_all, kept)
    check_weighted_arms(t, cw)      # the message every estimator gives
    # computed on weights of mean 1 (scale-free: no overflow at 1e300, no
    # underflow at 1e-300); the unit weights returned are on the user's scale
    scale = 1.0
    if cw is not None:
        raw_top = float(np.max(cw))
        cw = normalise_weights(cw)
        scale = raw_top / float(np.max(cw))      # a power of two: exact
    cw = np.ones(t.size) if cw is None else cw
    q = cw[~t] * (bw[~t] if bw is not None else 1.0)
    target = cw[t] @ xs[t] / cw[t].sum()
    res = entropy_balance(xs[~t], target, base_weights=q, names=names, **kwargs)
    w = np.ones(t.size)
    w[~t] = res.weights
    unit = _unit_weights_att(w, t)
    if weights is not None:
        unit[t] = cw[t]
        unit[~t] = unit[~t] * cw[t].sum() / t.sum()
        unit = unit * scale
    return _fit(res, unit, xs, t, kept, names, sd)


def hierarchical_balance_from_table(data, treatment: str, x, cluster: str, lam: float,
                                    na_action: str = "fail", sd: str = "treated",
                                    **kwargs) -> BalancingFit:
    """Hierarchical balancing weights on a table (see ``hierarchical_balance``).
    Treatment varies within clusters here; a cluster with treated units and
    no controls is an error naming the cluster."""
    xs, _, _, t, codes, labels, kept, names, _ = _read(data, treatment, x, cluster=cluster,
                                                        na_action=na_action)
    n1c = np.bincount(codes, weights=t, minlength=len(labels))
    n0c = np.bincount(codes, weights=~t, minlength=len(labels))
    lonely = np.flatnonzero((n1c > 0) & (n0c == 0))
    if lonely.size:
        raise ValueError(
            f"cluster '{labels[lonely[0]]}' (column '{cluster}') has treated units but no "
            f"controls ({lonely.size} such cluster(s)); hierarchical balancing needs controls in "
            f"every treated cluster; if '{treatment}' is assigned to whole clusters use "
            f"cluster_balance_from_table")
    res = hierarchical_balance(xs, t, labels[codes], lam, names=names, **kwargs)
    return _fit(res, res.weights, xs, t, kept, names, sd)


def cluster_balance_from_table(data, treatment: str, x, cluster: str, icc: float,
                               cluster_x=(), na_action: str = "fail", sd: str = "treated",
                               **kwargs) -> BalancingFit:
    """Cluster balancing weights on an individual-level table (see
    ``cluster_balance``): ``x`` individual covariates (averaged within
    cluster), ``cluster_x`` cluster covariates (constant within cluster), and
    ``treatment`` constant within cluster (an error names a cluster where it
    varies). ``weights`` are per row: 1 for treated individuals and
    N_1 w_c / n_c for individuals in control cluster c, so the individual-level
    balance table reproduces the cluster-level balance."""
    xs, vs, _, t, codes, labels, kept, xn, vn = _read(data, treatment, x, cluster=cluster,
                                                       cluster_x=cluster_x, na_action=na_action)
    g = len(labels)
    nc = np.bincount(codes, minlength=g).astype(float)
    share = np.bincount(codes, weights=t, minlength=g) / nc
    mixed = np.flatnonzero((share > 0) & (share < 1))
    if mixed.size:
        raise ValueError(
            f"treatment column '{treatment}' varies within cluster '{labels[mixed[0]]}' "
            f"(column '{cluster}'; {mixed.size} such cluster(s)), but cluster balancing assumes "
            f"treatment assigned to whole clusters; use hierarchical_balance_from_table instead")
    for k, name in enumerate(vn):
        lo = np.full(g, np.inf)
        hi = np.full(g, -np.inf)
        np.minimum.at(lo, codes, vs[:, k])
        np.maximum.at(hi, codes, vs[:, k])
        varies = np.flatnonzero(hi - lo > 1e-12 * np.maximum(1.0, np.abs(hi)))
        if varies.size:
            raise ValueError(f"cluster covariate '{name}' varies within cluster "
                             f"'{labels[varies[0]]}' (column '{cluster}'); a cluster covariate "
                             f"must be constant within each cluster (pass it in x to balance its mean)")
    allx = np.hstack([xs, vs])
    xbar = np.stack([np.bincount(codes, weights=allx[:, k], minlength=g) / nc
                     for k in range(allx.shape[1])], axis=1)
    tc = share == 1
    names = xn + vn
    res = cluster_balance(xbar, tc, nc, icc, names=names, **kwargs)
    w = np.ones(t.size)
    ctrl = ~t
    w[ctrl] = t.sum() * res.weights[codes[ctrl]] / nc[codes[ctrl]]
    return _fit(res, w, allx, t, kept, names, sd)
