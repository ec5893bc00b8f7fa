"""Arrow in: column checks, missing values, cluster encoding, scaling.

Every check here raises a ``ValueError`` that names the column (and the count
of bad rows) and says what to do, so that a user never sees a JAX traceback
for a data problem.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def as_table(data) -> pa.Table:
    """Any Arrow-compatible table -> ``pyarrow.Table``.

    Accepts a pyarrow Table or RecordBatch, anything exposing
    ``__arrow_c_stream__`` (polars, duckdb, recent pandas), a pandas
    DataFrame, or a dict of equal-length columns (what R sends).
    """
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, dict):
        return pa.table({str(k): _column(v, str(k)) for k, v in data.items()})
    if type(data).__module__.startswith("pandas"):
        # before the C-stream route, which would turn the index into a column
        # (__index_level_0__) that x=None then takes as a control
        if hasattr(data, "columns"):
            names = [str(c) for c in data.columns]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"column name(s) {twice} appear more than once in the data; "
                                 f"give the columns distinct names")
        return pa.Table.from_pandas(data, preserve_index=False)
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)
    raise TypeError(
        f"data must be an Arrow-compatible table (pyarrow.Table, polars or pandas "
        f"DataFrame, or a dict of columns), got {type(data).__name__}"
    )


def _column(values, name: str):
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"column '{name}' must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "O":  # strings from R arrive as objects
        return pa.array(list(values), from_pandas=True)
    return pa.array(arr, from_pandas=True)  # NaN in a float column stays NaN


def require_columns(table: pa.Table, names, need_rows: bool = True) -> None:
    if need_rows and table.num_rows == 0:
        raise ValueError("the data has no rows: pass a table with at least two clusters of observations")
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise ValueError(
            f"column(s) {missing} not found in the data; available columns: {table.column_names}"
        )
    twice = [n for n in dict.fromkeys(names) if table.column_names.count(n) > 1]
    if twice:
        raise ValueError(f"column name(s) {twice} appear more than once in the data; give the "
                         f"columns distinct names")


def bad_rows(column: pa.ChunkedArray) -> np.ndarray:
    """Boolean mask of rows that are null, or NaN/inf for floating columns."""
    bad = column.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_floating(column.type):
        vals = column.to_numpy(zero_copy_only=False).astype(float)
        bad = bad | ~np.isfinite(vals)
    return np.asarray(bad, dtype=bool)


def numeric(table: pa.Table, name: str, role: str) -> np.ndarray:
    """A numeric column as float64, with a clear error for anything else."""
    col = table.column(name)
    t = col.type
    if pa.types.is_dictionary(t) or not (
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
    ):
        raise ValueError(f"{role} column '{name}' must be numeric, but has type {t}; "
                         f"{CONVERT_HINTS.get(role, CONVERT_HINTS['control'])}")
    # integers beyond 2^53 become the nearest float64 (pyarrow's safe cast refuses them)
    return pc.cast(col, pa.float64(), safe=not pa.types.is_integer(t)).to_numpy(
        zero_copy_only=False)


CONVERT_HINTS = {
    "outcome": "code it as numbers (0/1 for a binary outcome) before fitting",
    "treatment": "code it as numbers (0/1 for a binary treatment) before estimating",
    "control": "convert it (e.g. dummies for a categorical control) before fitting",
    "covariate": "convert it (e.g. dummies for a categorical covariate) before balancing",
    "weights": "give one number >= 0 per row",
}

LARGE = 1e150   # a value whose square overflows float64 with 1e8 others: its SD is Inf
SMALL = 1e-150  # a column whose values' squares underflow to 0: its SD is 0


def check_magnitudes(values: np.ndarray, name: str, role: str) -> None:
    """A column whose standardisation would overflow or underflow is an
    error naming it (an Inf scale drops the column silently; a column
    scaled by 1e-300 looks constant)."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return
    big = float(np.max(np.abs(finite)))
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        sd = float(np.std(finite))
    spread = float(np.max(finite) - np.min(finite)) if np.isfinite(big) else np.inf
    if big > LARGE or not np.isfinite(sd) or not np.isfinite(spread):
        raise ValueError(f"{role} column '{name}' has values as large as {big:.3g} in magnitude: "
                         f"its standard deviation overflows; rescale it (e.g. divide by a power "
                         f"of ten) before fitting")
    if 0 < big < SMALL or (spread > 0 and sd == 0):
        raise ValueError(f"{role} column '{name}' has values as small as {big:.3g} in magnitude "
                         f"(spread {spread:.3g}): its standard deviation underflows; rescale it "
                         f"(e.g. multiply by a power of ten) before fitting")


def encode_clusters(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster labels of any type -> integer codes 0..G-1 (in order of first
    appearance after sorting the labels) and the array of labels."""
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    values = column.to_numpy(zero_copy_only=False)
    labels, codes = np.unique(values.astype(str) if values.dtype.kind == "O" else values,
                              return_inverse=True)
    return codes.astype(np.int64), labels


def check_roles(y, x, cluster=None, d=None) -> None:
    """The outcome, the treatment and the cluster are not controls, and are
    three different columns (the same messages as the R formula layer).
    ``cluster`` None: a table without one (fixed effects alone)."""
    if cluster is not None and y == cluster:
        raise ValueError(f"the outcome '{y}' is also the cluster: name two different columns")
    if d is not None and d == y:
        raise ValueError(f"the outcome and the treatment are the same column '{d}': name two "
                         f"different columns")
    if d is not None and cluster is not None and d == cluster:
        raise ValueError(f"the treatment '{d}' is also the cluster: name two different columns")
    if y in x:
        raise ValueError(f"the outcome '{y}' is also a control: remove it from the controls")
    if cluster is not None and cluster in x:
        raise ValueError(f"the cluster variable '{cluster}' is also a control; rfp never uses the "
                         f"cluster as an input (it predicts for clusters it has not seen): remove "
                         f"it from the controls")
    if d is not None and d in x:
        raise ValueError(f"the treatment '{d}' is also a control: remove it from the controls")


@dataclass
class Prepared:
    """Checked, numeric data for the backend."""
    x: np.ndarray          # (n, p) float64
    y: np.ndarray          # (n,) float64
    cluster: np.ndarray    # (n,) int codes
    labels: np.ndarray     # cluster label of each code
    x_names: list
    n_dropped: int
    weights: np.ndarray | None = None   # case weights of the kept rows (None: all 1)
    texts: dict | None = None   # text columns of the kept rows: name -> list of str


def missing_rows(table: pa.Table, names, na_action: str = "fail") -> np.ndarray:
    """Rows with a null, NaN or inf in any column of ``names``.

    With ``na_action="fail"`` the first column that has one is an error naming
    it, its count and its first row; with ``"omit"`` the rows are returned.
    """
    if na_action not in ("fail", "omit"):
        raise ValueError(f"na_action must be 'fail' or 'omit', got {na_action!r}")
    bad = np.zeros(table.num_rows, dtype=bool)
    for name in dict.fromkeys(names):
        b = bad_rows(table.column(name))
        if b.any() and na_action == "fail":
            raise ValueError(
                f"column '{name}' has {int(b.sum())} missing value(s) (null, NaN or inf), "
                f"first at row {int(np.argmax(b)) + 1}; fix them or pass na_action='omit' "
                f"to drop those rows")
        bad |= b
    return bad


def drop_missing(table: pa.Table, names, na_action: str = "fail") -> tuple[pa.Table, np.ndarray]:
    """The table without rows missing in ``names``, and the kept-row mask.

    Dropping is only done when asked (``na_action="omit"``), and the count
    dropped is reported as a warning.
    """
    bad = missing_rows(table, names, na_action)
    if bad.any():
        warnings.warn(f"rfp: dropped {int(bad.sum())} row(s) with missing values", stacklevel=4)
        table = table.filter(pa.array(~bad))
        if table.num_rows == 0:
            raise ValueError("every row has a missing value: nothing is left")
    return table, ~bad


def controls(table: pa.Table, x, others) -> list:
    """The control columns: ``x`` as a list; ``x = "all"`` takes every column
    not in ``others`` (outcome, treatment, cluster). ``x`` is required: a
    silent default would take every other column, a simulated truth or an
    identifier included."""
    if x is None:
        raise ValueError(
            "x= is required: name the control columns (x=['x1', 'x2']), or pass x='all' to use "
            f"every column other than {[o for o in others if o is not None]}")
    if isinstance(x, str) and x == "all" and "all" not in table.column_names:
        return [c for c in table.column_names if c not in others]
    return [x] if isinstance(x, str) else list(x)


def case_weights(table: pa.Table, weights) -> np.ndarray | None:
    """Case weights, one per row of ``table``: ``weights`` None (none), a
    column name or numbers (one per row). A missing, negative or infinite
    weight is an error naming its row (a missing weight is never dropped by
    ``na_action``: it is an error, as its row's weight is unknown)."""
    from rfp.settings import case_weight_values
    if weights is None:
        return None
    if isinstance(weights, str) and weights in ("obs", "cluster") and \
            weights not in table.column_names:
        raise ValueError(f"weights = {weights!r} is the former mode (equal_clusters = "
                         f"{weights == 'cluster'}); pass equal_clusters instead")
    if isinstance(weights, str) and weights in ("obs", "cluster"):
        import warnings
        warnings.warn(
            f"weights = {weights!r} names the data's column '{weights}', used as case weights; "
            f"the former reading of {weights!r} (equal_clusters = {weights == 'cluster'}) no "
            f"longer applies when the data have such a column (pass equal_clusters for that)",
            FutureWarning, stacklevel=3)
    if isinstance(weights, str):
        if weights not in table.column_names:
            raise ValueError(f"weights: column '{weights}' not found in the data; available "
                             f"columns: {table.column_names} (or pass the weights themselves, "
                             f"one number per row)")
        values = numeric(table, weights, "weights")
        return case_weight_values(values, f"weights (column '{weights}')")
    values = case_weight_values(weights)
    if values.shape[0] != table.num_rows:
        raise ValueError(f"weights has {values.shape[0]} value(s) but the data have "
                         f"{table.num_rows} rows: give one case weight per row, or the name of "
                         f"a weight column")
    return values


def kept_weights(weights, kept) -> np.ndarray | None:
    """Case weights of the rows kept after dropping missing values; all
    zero is an error."""
    if weights is None:
        return None
    w = np.asarray(weights)[np.asarray(kept, dtype=bool)]
    if w.size and not np.any(w > 0):
        raise ValueError("weights are all zero on the rows used: no observation would count; "
                         "give some observations a positive weight")
    return w


def normalise_weights(weights) -> np.ndarray | None:
    """Case weights rescaled, before any arithmetic, to a mean in [1, 2)
    over the rows of positive weight (weights of mean 1 are left as they are), so that every estimator is scale-free
    in them as lm, fixest and estimatr are (1e-200 * w and 1e200 * w give the
    results of w, with no underflow or overflow). The factor is a power of
    two, so the rescaling is exact: whole-number weights still give the
    duplicated rows' arithmetic. The largest weight is brought to [0.5, 1)
    first so that the mean cannot overflow. None stays None."""
    if weights is None:
        return None
    w = np.asarray(weights, dtype=float)
    top = float(np.max(w)) if w.size else 0.0
    if not (top > 0 and np.isfinite(top)):
        return w
    w = np.ldexp(w, -np.frexp(top)[1])
    positive = w[w > 0]
    return np.ldexp(w, 1 - np.frexp(float(np.mean(positive)))[1]) if positive.size else w


def check_weighted_clusters(codes, labels, weights, what: str = "the method") -> None:
    """At least two clusters hold a positive case weight: an error counting
    them (and naming the one) otherwise, one check for fit, tune, the
    effects and fixed effects."""
    if weights is None:
        return
    totals = np.bincount(np.asarray(codes), weights=np.asarray(weights, dtype=float) > 0,
                         minlength=len(labels))
    positive = np.flatnonzero(totals > 0)
    if positive.size < 2 <= len(labels):
        which = (f" (cluster '{labels[positive[0]]}')" if positive.size else "")
        raise ValueError(f"weights are positive in only {positive.size} of the {len(labels)} "
                         f"clusters{which}: {what} needs at least two clusters with a positive "
                         f"case weight; give observations in more clusters a positive weight")


def check_weighted_arms(d, weights) -> None:
    """A binary treatment's treated rows, and its control rows, each hold a
    positive case weight: one message for every estimator (an effect with
    one group of weight 0 is not defined)."""
    if weights is None:
        return
    d = np.asarray(d, dtype=float)
    if not np.all((d == 0) | (d == 1)) or np.unique(d).size < 2:
        return
    w = np.asarray(weights, dtype=float)
    for group, rows in (("treated", d == 1), ("control", d == 0)):
        if not np.any(w[rows] > 0):
            raise ValueError(f"weights: the {group} rows all have case weight 0; an effect "
                             f"needs treated and control rows of positive weight: give some "
                             f"{group} rows a positive weight")


def text_names(text) -> list:
    """The text columns: None, a name or a list of names."""
    if text is None:
        return []
    names = [text] if isinstance(text, str) else list(text)
    if not all(isinstance(t, str) for t in names) or len(set(names)) < len(names):
        raise ValueError(f"text must name text columns (a string or a list of distinct "
                         f"strings), got {text!r}")
    return names


def check_text_roles(text, y, x, cluster, d=None) -> None:
    """A text column is not also the outcome, the treatment, the cluster or
    a numeric control."""
    for t in text:
        if t in (y, d, cluster) or t in x:
            role = ("outcome" if t == y else "treatment" if t == d else
                    "cluster" if t == cluster else "numeric control")
            raise ValueError(f"the text column '{t}' is also the {role}: name it once")


def text_column(table: pa.Table, name: str) -> list:
    """A text column's values as Python strings (categories as their labels)."""
    column = table.column(name)
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise ValueError(f"text column '{name}' holds {kind}, not text: pass it in x= if it is "
                         f"a number, or convert it to strings")
    return column.to_pylist()


def prepare(data, y: str, x, cluster: str, na_action: str = "fail",
            min_clusters: int = 2, weights=None, text=None) -> Prepared:
    """Check and extract y, x, cluster, the text columns (``text``: names of
    string columns; ``Prepared.texts``) and the case weights (``weights``:
    None, a column name or one number per row; ``case_weights``).

    ``na_action="fail"`` (default) rejects missing values with the column and
    count; ``na_action="omit"`` drops those rows and warns with the count.
    """
    table = as_table(data)
    w_all = case_weights(table, weights)
    text = text_names(text)
    others = (y, cluster, weights if isinstance(weights, str) else None, *text)
    x = [] if x is None and text else controls(table, x, others)
    if not x and not text:
        raise ValueError("no controls: pass x=[...] naming at least one numeric column")
    check_roles(y, x, cluster)
    check_text_roles(text, y, x, cluster)
    require_columns(table, [y, *x, *text, cluster])
    if na_action not in ("fail", "omit"):
        raise ValueError(f"na_action must be 'fail' or 'omit', got {na_action!r}")

    for name, role in [(y, "outcome"), *[(c, "control") for c in x]]:
        numeric(table, name, role)  # type check before looking for NaN
    for t in text:
        text_column(table.slice(0, 0), t)

    table, kept = drop_missing(table, [y, *x, *text, cluster], na_action)
    n_dropped = int((~kept).sum())

    xs = np.column_stack([numeric(table, c, "control") for c in x]) if x else \
        np.zeros((table.num_rows, 0))
    ys = numeric(table, y, "outcome")
    for j, c in enumerate(x):
        check_magnitudes(xs[:, j], c, "control")
    check_magnitudes(ys, y, "outcome")
    codes, labels = encode_clusters(table.column(cluster))
    if len(labels) < min_clusters:
        raise ValueError(
            f"cluster column '{cluster}' has only {len(labels)} cluster(s); the method "
            f"needs at least two clusters (it adapts to each and holds some out)"
        )
    w = kept_weights(w_all, kept)
    check_weighted_clusters(codes, labels, w, "the method")   # by label (fit_arrays sees codes)
    texts = {t: text_column(table, t) for t in text} or None
    return Prepared(xs, ys, codes, labels, x, n_dropped, w, texts)


def prepare_x(data, x_names, na_action: str = "fail", text=()) -> tuple:
    """Controls for prediction: returns (x, kept-row mask), or with text
    columns (x, kept-row mask, {name: strings of the kept rows})."""
    table = as_table(data)
    require_columns(table, [*x_names, *text], need_rows=False)  # no rows: no predictions
    for name in x_names:
        numeric(table, name, "control")
    for t in text:
        text_column(table.slice(0, 0), t)
    bad = missing_rows(table, [*x_names, *text], na_action)
    xs = np.column_stack([numeric(table, c, "control") for c in x_names]) if x_names else \
        np.zeros((table.num_rows, 0))
    if not text:
        return xs[~bad], ~bad
    kept = table.filter(pa.array(~bad))
    return xs[~bad], ~bad, {t: text_column(kept, t) for t in text}


@dataclass
class Scaler:
    """Standardisation of inputs (and of a continuous outcome): the backend
    trains on z-scores; predictions go back to the original scale."""
    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float = 0.0
    y_scale: float = 1.0

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray | None, scale_y: bool, w=None) -> "Scaler":
        """Means and SDs of the columns, weighted by the case weights ``w``
        when given (so a weight of 2 scales as the row twice)."""
        if w is None:
            mean, sd = x.mean(axis=0), x.std(axis=0)
            if scale_y and y is not None:
                ym, ysd = float(y.mean()), float(y.std())
        else:
            w = normalise_weights(w)
            w = w / np.sum(w)
            mean = w @ x
            sd = np.sqrt(w @ (x - mean) ** 2)
            if scale_y and y is not None:
                ym = float(w @ y)
                ysd = float(np.sqrt(w @ (y - ym) ** 2))
        sd = np.where(sd > 0, sd, 1.0)  # a constant column is left unscaled
        if scale_y and y is not None:
            return cls(mean, sd, ym, ysd if ysd > 0 else 1.0)
        return cls(mean, sd)

    def x(self, x: np.ndarray) -> np.ndarray:
        return (x - self.x_mean) / self.x_scale

    def y(self, y: np.ndarray) -> np.ndarray:
        return (y - self.y_mean) / self.y_scale

    def y_back(self, z: np.ndarray) -> np.ndarray:
        return z * self.y_scale + self.y_mean
