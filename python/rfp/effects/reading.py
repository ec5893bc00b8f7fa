"""Reading an effect's inputs: outcome, treatment, controls, text and
cluster from a table, rows with missing values or zero weight handled, and
the fit settings each nuisance receives."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rfp import data as data_mod
from rfp.settings import check
from rfp.simulate import Simulation
from rfp.training.fit import DEFAULTS, _text_settings, encode_texts


@dataclass
class EffectData:
    """Checked columns for an effect: y, d, x (the numeric controls) as float
    arrays, cluster codes; with text columns among the controls, ``text``
    holds their token ids and masks (``text.TextEncoder.encode``) and
    ``encoder`` the vocabulary, and ``inputs`` is the text model's pytree."""
    y: np.ndarray
    d: np.ndarray
    x: np.ndarray
    cluster: np.ndarray
    labels: np.ndarray
    x_names: list
    outcome: str
    treatment: str
    cluster_name: str
    kept: np.ndarray
    n_dropped: int = 0
    w: np.ndarray | None = None    # case weights of the rows used (None: all 1), mean in [1, 2)
    # with case weights: which complete rows (after na_action) have a positive
    # weight and are used; rows of weight 0 are dropped, as fixest does
    positive: np.ndarray | None = None
    text: dict | None = None       # {"tokens", "mask"} of the rows used, or None
    encoder: object = None         # text.TextEncoder fitted on the rows used

    @property
    def inputs(self):
        """The nuisance models' inputs: the numeric controls, or with text
        columns the pytree ``{"x", "tokens", "mask"}`` of ``models.text_bag``."""
        return self.x if self.text is None else {"x": self.x, **self.text}

    @property
    def n_clusters(self) -> int:
        return len(self.labels)

    @property
    def binary(self) -> bool:
        return bool(np.all((self.d == 0) | (self.d == 1)))


def resolve(data, y, d, x, cluster):
    """A ``Simulation`` supplies its table and default column roles."""
    if isinstance(data, Simulation):
        s = data.settings
        y = "y" if y is None else y
        d = s.get("treatment", "d") if d is None else d
        cluster = s.get("cluster", "cluster") if cluster is None else cluster
        x = list(data.x_names) if x is None else x
        data = data.data
    return data, y, d, x, cluster


def read(data, y, d, x=None, cluster=None, *, na_action="fail", binary=False,
         design=None, method="this estimator", allow_no_controls=False,
         weights=None, text=None, fit_settings=None) -> EffectData:
    """Check and extract outcome, treatment, controls, clusters and the case
    weights (``weights``: None, a column name or one number per row;
    ``data.case_weights``).

    ``text``: names of text columns among the controls (as in ``rfp.fit``:
    checked like the other columns, their missing values dropped by
    ``na_action="omit"``; x may then be None, no numeric controls). One
    vocabulary is built from all rows used (``vocab_size`` and
    ``max_tokens`` of ``fit_settings``; unsupervised: neither outcome nor
    treatment enters it), and ``EffectData.text`` holds the token ids.

    Raises ``ValueError`` naming the column for missing columns or values, a
    non-numeric column (or a text column that is not text), a constant
    treatment, a non-binary treatment when ``binary`` (with the values
    seen), and, when ``design="cluster"``, a treatment that varies within a
    cluster (naming one).
    """
    data, y, d, x, cluster = resolve(data, y, d, x, cluster)
    if y is None or d is None:
        raise ValueError("name the outcome (y=...) and the treatment (d=...) columns")
    if cluster is None:
        raise ValueError("cluster= is required: name the column that identifies clusters")
    if design not in (None, "cluster", "individual"):
        raise ValueError(f"design must be None, 'cluster' or 'individual', got {design!r}")
    if na_action not in ("fail", "omit"):
        raise ValueError(f"na_action must be 'fail' or 'omit', got {na_action!r}")
    table = data_mod.as_table(data)
    w_all = data_mod.case_weights(table, weights)
    text = data_mod.text_names(text)
    others = (y, d, cluster, weights if isinstance(weights, str) else None, *text)
    x = [] if x is None and text else data_mod.controls(table, x, others)
    if not x and not text and not allow_no_controls:
        raise ValueError("no controls: pass x=[...] naming at least one numeric column "
                         "(or text=[...] naming text columns)")
    data_mod.check_roles(y, x, cluster, d)
    data_mod.check_text_roles(text, y, x, cluster, d)
    data_mod.require_columns(table, [y, d, *x, *text, cluster])
    for name, role in [(y, "outcome"), (d, "treatment"), *[(c, "control") for c in x]]:
        data_mod.numeric(table, name, role)
    for t in text:
        data_mod.text_column(table.slice(0, 0), t)   # its type, before looking for missing values
    table, kept = data_mod.drop_missing(table, [y, d, *x, *text, cluster], na_action)
    n_dropped = int((~kept).sum())
    table, kept, w, positive = positive_weight_rows(table, kept, data_mod.kept_weights(w_all, kept),
                                                    d, cluster, method)
    yv = data_mod.numeric(table, y, "outcome")
    dv = data_mod.numeric(table, d, "treatment")
    xv = (np.column_stack([data_mod.numeric(table, c, "control") for c in x]) if x
          else np.zeros((table.num_rows, 0)))
    for name, values, role in [(y, yv, "outcome"), (d, dv, "treatment"),
                               *[(c, xv[:, j], "control") for j, c in enumerate(x)]]:
        data_mod.check_magnitudes(values, name, role)
    if np.ptp(yv) == 0:
        raise ValueError(f"outcome column '{y}' is constant (every row is {yv[0]:g}): there is "
                         f"no variation for a treatment to explain")
    codes, labels = data_mod.encode_clusters(table.column(cluster))
    if len(labels) < 2:
        raise ValueError(f"cluster column '{cluster}' has only {len(labels)} cluster(s); "
                         f"cross-fitting by cluster needs at least two")
    seen = np.unique(dv)
    if seen.size < 2:
        raise ValueError(f"treatment column '{d}' is constant (every row is {seen[0]:g}): "
                         f"there is no contrast to estimate")
    if binary and not np.all(np.isin(seen, [0.0, 1.0])):
        shown = [float(v) if v % 1 else int(v) for v in seen[:10]]
        raise ValueError(f"treatment column '{d}' must be binary (0/1) for {method}; values seen: "
                         f"{shown}{' ...' if seen.size > 10 else ''}")
    if design == "cluster":
        lo = np.full(len(labels), np.inf)
        hi = np.full(len(labels), -np.inf)
        np.minimum.at(lo, codes, dv)
        np.maximum.at(hi, codes, dv)
        varies = np.flatnonzero(hi > lo)
        if varies.size:
            raise ValueError(
                f"treatment column '{d}' varies within cluster '{labels[varies[0]]}' (column "
                f"'{cluster}'; {varies.size} such cluster(s)), but design='cluster' says treatment "
                f"is assigned to whole clusters; fix the data or pass design='individual'")
    encoder, tokens = None, None
    if text:
        encoder, tokens = encode_texts({t: data_mod.text_column(table, t) for t in text},
                                       fit_settings or {}, codes)
    return EffectData(yv, dv, xv, codes, labels, x, y, d, cluster, kept, n_dropped, w, positive,
                      tokens, encoder)


def positive_weight_rows(table, kept, w, d, cluster, method):
    """Case weights: refuse a treated or control group of weight 0 and fewer
    than two clusters of positive weight, then drop the rows of weight 0
    (fixest's rule, as ``fixed_effects`` does, so that n, the clusters and
    the degrees of freedom count the same everywhere) and rescale the rest
    by a power of two to a mean near 1 (``data.normalise_weights``). Returns (table, kept rows of the
    data given, weights, the mask of positive rows among the complete ones
    or None)."""
    if w is None:
        return table, kept, None, None
    data_mod.check_weighted_arms(data_mod.numeric(table, d, "treatment"), w)
    codes, labels = data_mod.encode_clusters(table.column(cluster))
    data_mod.check_weighted_clusters(codes, labels, w, method)
    positive = w > 0
    if not positive.all():
        table = table.filter(pa.array(positive))
        kept = kept.copy()
        kept[np.flatnonzero(kept)[~positive]] = False
    return table, kept, data_mod.normalise_weights(w[positive]), positive


def with_case_weights(ed: EffectData, fit_settings: dict) -> dict:
    """The nuisance fits' settings with the case weights of the rows used
    (``ed.w``) in place of the column name or full-length vector given."""
    out = {k: v for k, v in fit_settings.items() if k != "weights"}
    if ed.w is not None:
        out["weights"] = ed.w
    return out


def with_text(ed: EffectData, fit_settings: dict) -> dict:
    """The nuisance fits' settings with text columns among the controls: the
    method's model is the embedding bag ``model="text"``, the ``model``
    given ("mlp" or "linear") its ``head`` (``training.fit._text_settings``, as for
    ``rfp.fit``). Without text columns the settings as given."""
    if ed.text is None:
        if fit_settings.get("model") == "text":
            raise ValueError("model = 'text' needs text columns: name them in text=")
        return fit_settings
    rest = {k: v for k, v in fit_settings.items() if k != "model"}
    model, rest = _text_settings(fit_settings.get("model", DEFAULTS["model"]), rest)
    return {**rest, "model": model}


def treatment_is_clustered(d: np.ndarray, cluster: np.ndarray) -> bool:
    """True when treatment is constant within every cluster."""
    n_groups = int(cluster.max()) + 1
    lo = np.full(n_groups, np.inf)
    hi = np.full(n_groups, -np.inf)
    np.minimum.at(lo, cluster, d)
    np.maximum.at(hi, cluster, d)
    return bool(np.all(hi == lo))


def check_vcov(vcov, method: str) -> str:
    """Only "CR1" for DML and AIPW (module docstring, "Small-cluster
    inference"); a clear error for "CR2" and "wild" (any other value: the
    settings validator's)."""
    vcov = check("vcov", vcov)
    if vcov != "CR1":
        raise NotImplementedError(
            f"vcov = {vcov!r} is not available for {method}: CR2 and the wild cluster bootstrap "
            f"correct OLS residuals for a fixed design's leverage (hat matrix), but {method}'s "
            f"residuals come from cross-fitted nonlinear nuisance models, which have none, and a "
            f"correction of the final step alone would ignore the nuisance estimation error. "
            f"Use vcov = 'CR1' here, and vcov = 'CR2' or 'wild' on the fixed-effects row of "
            f"rfp.compare (or baselines.fixed_effects) for small-cluster inference.")
    return vcov
