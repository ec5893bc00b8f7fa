"""The t test and interval of an estimate with its SE and degrees of freedom."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class TTest:
    """t statistic, two-sided p-value and confidence interval."""
    t: np.ndarray
    p: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    df: float
    level: float


def t_test(estimate, std_error, df, level: float = 0.95, null=0.0) -> TTest:
    """Two-sided t-test of estimate = null and the ``level`` confidence
    interval, on a Student t with ``df`` degrees of freedom (G - 1 for
    CR1, as fixest and Stata do; Satterthwaite's, not a whole number and one
    per coefficient, for CR2)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if np.any(np.asarray(df) <= 0):
        raise ValueError(f"t-test needs positive degrees of freedom, got df = {df}")
    est = np.asarray(estimate, dtype=float)
    se = np.asarray(std_error, dtype=float)
    t = (est - null) / se
    p = 2 * stats.t.sf(np.abs(t), df)
    q = stats.t.ppf(0.5 + level / 2, df)
    df = int(df) if np.ndim(df) == 0 and float(df).is_integer() else df
    return TTest(t, p, est - q * se, est + q * se, df, float(level))
