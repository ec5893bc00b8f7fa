"""An effect estimate (``Effect``): estimate, SE, t interval, the nuisance
models' diagnostics; a readable repr, ``summary()`` and ``to_pandas()``."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from scipy import stats

from rfp import results


@dataclass
class Effect:
    """One estimate: ``estimand`` is "ATE", "ATT" or "PLM" (the partially
    linear model's τ, a variance-weighted average of effects when they vary).
    ``diagnostics`` holds plain numbers (variance_share, ess, converged,
    n_clipped, ...); ``nuisance`` the cross-fitted predictions and folds;
    ``se_type`` the variance ("CR1": cluster-robust, t on ``df`` = G − 1)."""
    method: str
    estimand: str
    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    n: int
    n_clusters: int
    df: int
    level: float
    diagnostics: dict = field(default_factory=dict)
    nuisance: dict = field(default_factory=dict, repr=False)
    se_type: str = "CR1"

    @property
    def t(self) -> float:
        return self.estimate / self.std_error

    @property
    def p_value(self) -> float:
        """Two-sided p-value of estimate = 0 (t on ``df``)."""
        t = self.t
        return float(2 * stats.t.sf(abs(t), self.df)) if np.isfinite(t) else float("nan")

    def summary(self):
        """Coefficient table (pandas, one row indexed by the estimand):
        estimate, std_error, t, p_value, ci_low, ci_high, df, se_type."""
        pd = results.pandas()
        row = {"estimate": self.estimate, "std_error": self.std_error, "t": self.t,
               "p_value": self.p_value, "ci_low": self.ci_low, "ci_high": self.ci_high,
               "df": self.df, "se_type": self.se_type}
        return pd.DataFrame([row], index=pd.Index([self.estimand], name="estimand"))

    def to_pandas(self):
        """``tidy()`` as a pandas DataFrame, with p_value, df and se_type."""
        out = self.tidy().to_pandas()
        out["p_value"], out["df"], out["se_type"] = self.p_value, self.df, self.se_type
        return out

    def __repr__(self) -> str:
        row = {"estimand": self.estimand, "estimate": self.estimate,
               "std_error": self.std_error, "t": self.t, "p_value": self.p_value,
               "ci_low": self.ci_low, "ci_high": self.ci_high}
        d = self.diagnostics
        notes = [f"{k} {results.number(d[k], 3)}" for k in ("variance_share", "ess")
                 if isinstance(d.get(k), (int, float))]
        if "converged" in d:
            notes.append(f"converged {results.number(bool(d['converged']))}")
        if d.get("repeats", 1) > 1:
            notes.append(f"median of {d['repeats']} fold splits")
        return "\n".join([
            f"rfp effect: {self.method}, {self.n} observations in {self.n_clusters} clusters",
            results.text_table([row], list(row)),
            f"{self.se_type} standard error by cluster; t on {self.df} df; "
            f"{self.level:.0%} interval" + (f"; {', '.join(notes)}" if notes else ""),
        ])

    def tidy(self) -> pa.Table:
        """One row: method, estimand, estimate, std_error, ci_low, ci_high, n, n_clusters."""
        return pa.table({
            "method": [self.method], "estimand": [self.estimand],
            "estimate": [float(self.estimate)], "std_error": [float(self.std_error)],
            "ci_low": [float(self.ci_low)], "ci_high": [float(self.ci_high)],
            "n": [int(self.n)], "n_clusters": [int(self.n_clusters)],
        })
