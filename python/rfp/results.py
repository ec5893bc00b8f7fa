"""How result objects show themselves: a plain-text coefficient table for
``__repr__`` (no pandas needed) and pandas frames for ``summary()`` and
``to_pandas()`` (pandas is what pyfixest and DoubleML return; Arrow stays
the interchange format, e.g. ``tidy()``)."""
from __future__ import annotations

import math

SUMMARY_COLUMNS = ("estimate", "std_error", "t", "p_value", "ci_low", "ci_high", "df")


def pandas():
    """The pandas module, or a clear error saying how to get it."""
    try:
        import pandas as pd
    except ImportError as err:  # pragma: no cover - pandas is a test dependency
        raise ImportError("summary() and to_pandas() need pandas: pip install pandas") from err
    return pd


def number(v, digits: int = 4) -> str:
    """A number for a table: fixed digits, '-' for missing, 'inf' kept."""
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, int):
        return str(v)
    v = float(v)
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v != 0 and abs(v) < 10 ** -digits:
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}f}"


def text_table(rows: list, columns: list, labels: list | None = None) -> str:
    """Rows (dicts) as right-aligned text columns under their names."""
    labels = list(columns) if labels is None else list(labels)
    cells = [[number(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(lab)] + [len(row[j]) for row in cells]) for j, lab in enumerate(labels)]
    lines = ["  ".join(lab.rjust(w) for lab, w in zip(labels, widths))]
    lines += ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
