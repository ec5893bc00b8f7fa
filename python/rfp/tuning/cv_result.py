"""The cross-validation table (``CVResult``): every candidate's loss, its SE
across folds and its paired difference to the best, and the choice made
from it (``choose``)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from rfp import alerts
from rfp.tuning.grid import STATIC, TRACED, _hashable, candidate_name, complexity
from rfp.tuning.selection import MARGIN, simplest_within


@dataclass
class CVResult:
    """The cross-validation: one row per candidate (the linear models and the
    network's configurations, then the constant predictor), the chosen row,
    and the network's curves CV_g(t).  ``diff`` and ``se_diff``: each row's
    held-out loss minus the best row's, and the SE of that paired difference
    across clusters (``selection``); ``chosen == len(configs)`` means the
    constant (the training mean) was chosen."""
    configs: list
    loss: np.ndarray           # (G,) min_t CV_g(t)
    se: np.ndarray             # (G,) SE across folds at that t
    best_step: np.ndarray      # (G,) 0 for a candidate solved directly
    steps: list                # evaluation steps of the curves, per config
    curves: list               # CV_g(t), per config
    chosen: int
    chosen_step: int
    mean_loss: float           # the constant predictor
    mean_se: float
    folds: int
    one_se: bool
    max_steps: int
    fold_of_cluster: np.ndarray = field(repr=False, default=None)
    diff: np.ndarray = field(repr=False, default=None)      # (G + 1,) loss - best loss
    se_diff: np.ndarray = field(repr=False, default=None)   # (G + 1,) its paired SE
    margin: float = MARGIN
    # per-cluster held-out loss sums of every row (the mean's last) and the
    # clusters' weights: what the choice compared (not saved with a model)
    sums: list = field(repr=False, default=None)
    size: np.ndarray = field(repr=False, default=None)

    def choice(self, margin: float) -> int:
        """The row the rule would choose with another ``margin`` (the
        returned index is ``len(configs)`` for the mean)."""
        return choose(self.configs, self.loss, self.mean_loss, self.sums, self.size, margin)[0]

    @property
    def chose_mean(self) -> bool:
        return self.chosen == len(self.configs)

    @property
    def chosen_config(self) -> dict:
        """The chosen row's settings (``{"model": "constant"}`` for the mean)."""
        return {"model": "constant"} if self.chose_mean else self.configs[self.chosen]

    def table(self) -> list[dict]:
        """Rows: the candidate, the tuned settings, mean held-out loss, its SE
        across folds, the difference to the best row and its paired SE, the
        chosen step (0: solved directly), and whether the row was chosen."""
        inner = [c for c in self.configs if float(c["alpha"]) < 1.0]
        keys = [k for k in TRACED + STATIC if k != "model" and any(k in c for c in self.configs)
                and len({_hashable(c.get(k)) for c in (inner if k in ("inner_lr", "inner_steps")
                                                         else self.configs)}) > 1]
        keys = ["model"] + (keys or ["alpha"])
        if any(c.get("model") == "words" for c in self.configs):
            keys.append("ridge")   # the bag of words' penalty
        rows = []
        for g, c in enumerate(self.configs):
            row = {k: c.get(k) for k in keys}
            if not isinstance(row["model"], str):
                row["model"] = "user"
            if float(c["alpha"]) == 1.0:
                for k in ("inner_lr", "inner_steps"):
                    if k in row:
                        row[k] = None   # no inner loop at alpha = 1
            row.update(cv_loss=float(self.loss[g]), se=float(self.se[g]), **self._paired(g),
                       step=int(self.best_step[g]), chosen=g == self.chosen)
            rows.append(row)
        rows.append({**{k: None for k in keys}, "model": "mean", "cv_loss": self.mean_loss,
                     "se": self.mean_se, **self._paired(len(self.configs)), "step": 0,
                     "chosen": self.chose_mean})
        return rows

    def _paired(self, g):
        if self.diff is None:   # a table saved before the paired columns
            return {"diff": float("nan"), "se_diff": float("nan")}
        return {"diff": float(self.diff[g]), "se_diff": float(self.se_diff[g])}

    def to_arrow(self):
        """The table as a pyarrow Table (settings such as hidden as text)."""
        import pyarrow as pa
        rows = self.table()
        cols = {k: [r[k] for r in rows] for k in rows[0]}
        for k, v in cols.items():
            if any(isinstance(e, (tuple, list, str)) for e in v):
                cols[k] = [None if e is None else str(e) for e in v]
        return pa.table(cols)

    def to_pandas(self):
        import pandas as pd
        rows = self.table()
        df = pd.DataFrame(rows)
        df.index = [f"config {i}" for i in range(len(rows) - 1)] + ["mean (no model)"]
        return df

    def __repr__(self):
        lines = [f"cross-validation over {len(self.configs) + 1} candidate(s) x {self.folds} "
                 f"cluster folds{' (one-SE rule on steps)' if self.one_se else ''}; chosen: the "
                 f"simplest within {self.margin:g} paired SE of the best:"]
        rows = self.table()
        keys = [k for k in rows[0] if k not in ("cv_loss", "se", "diff", "se_diff", "step",
                                                 "chosen")]
        head = ("  ".join(f"{k:>10s}" for k in keys) +
                "     cv_loss    se  vs_best  se_diff   step")
        lines.append(head)
        order = sorted(range(len(rows)), key=lambda g: rows[g]["cv_loss"])
        for g in order:
            r = rows[g]
            label = "  ".join(f"{_fmt(r[k]):>10s}" for k in keys)
            mark = "  <- chosen" if r["chosen"] else ""
            lines.append(f"{label}  {r['cv_loss']:10.4g} {r['se']:5.2g}  {r['diff']:+7.4f}  "
                         f"{r['se_diff']:7.4f}  {r['step']:5d}{mark}")
        return "\n".join(lines)

    def plot(self, path=None):
        """CV_g(t) for every configuration, the chosen one highlighted, and
        the constant predictor as a dashed line."""
        from rfp.plots import cv_curves
        return cv_curves(self, path)


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def choose(configs, loss, mean_loss, sums, size, margin, simple=True) -> tuple[int, int]:
    """(chosen row, best row) of the table: rows are ``configs`` then the
    mean (index ``len(configs)``), ``sums`` their per-cluster held-out
    sums; the candidates are ordered from simple to flexible (``complexity``,
    then loss) for ``selection.simplest_within``. ``simple = False``: the
    mean cannot be chosen."""
    kinds = [complexity(c) for c in configs] + [0]
    loss = np.r_[loss, mean_loss]
    rows = [g for g in range(len(kinds)) if simple or g < len(configs)]
    order = sorted(rows, key=lambda g: (kinds[g], float(loss[g])))
    pick, table = simplest_within([sums[g] for g in order], size, margin)
    best = int(np.argmin([r["loss"] if np.isfinite(r["loss"]) else np.inf for r in table]))
    return order[pick], order[best]


def check_choice(cv: CVResult) -> None:
    """Warnings about the chosen row: every candidate diverged, the constant
    chosen (no candidate beats the training mean by more than the margin),
    a network chosen at its first evaluation, or at the last (not converged)."""
    finite = np.isfinite(cv.loss)
    if cv.configs and not finite.any():
        warnings.warn("every configuration diverged in cross-validation: lower learning_rate "
                      "or inner_lr in the grid", alerts.DivergenceWarning, stacklevel=3)
    if cv.chose_mean:
        g = int(np.argmin(np.where(finite, cv.loss, np.inf))) if finite.any() else None
        if g is None:
            why = ""
        elif cv.diff[-1] <= 0:   # the mean is the best row
            why = (f" (the best other candidate, {candidate_name(cv.configs[g])}, has "
                   f"{cv.loss[g]:.4g} against the mean's {cv.mean_loss:.4g})")
        else:
            why = (f" (the best, {candidate_name(cv.configs[g])}, beats it by "
                   f"{cv.diff[-1]:.3g}, within {cv.margin:g} x its paired SE {cv.se_diff[-1]:.3g})")
        warnings.warn(
            f"no candidate predicts held-out clusters better than their training mean by more "
            f"than {cv.margin:g} paired SE{why}: the fit is the training mean; the controls "
            f"may not predict the outcome across clusters (check model.cv)",
            alerts.NoBetterThanMeanWarning, stacklevel=3)
        return
    config = cv.configs[cv.chosen]
    if cv.best_step[cv.chosen] == 0 and len(cv.steps[cv.chosen]) == 1 \
            and cv.steps[cv.chosen][0] == 0:
        return   # solved directly: nothing to stop
    steps = cv.steps[cv.chosen]
    if len(steps) > 1 and cv.chosen_step == steps[0]:
        warnings.warn(
            f"the chosen configuration ({candidate_name(config)}) is best at the first "
            f"evaluation (step {cv.chosen_step}) and worse after it: the network fits what "
            f"generalises across clusters within {cv.chosen_step} steps and then overfits the "
            f"training clusters; a lower learning_rate or a smaller network may do better "
            f"(check model.cv)", alerts.StoppedAtOnceWarning, stacklevel=3)
    elif cv.chosen_step >= cv.max_steps:
        warnings.warn(
            f"the held-out loss was still falling at the last step ({cv.chosen_step}): "
            f"increase max_steps", alerts.NotConvergedWarning, stacklevel=3)
