"""Settings chosen by K-fold cross-validation across whole clusters, with every
configuration x fold trained at once in one compiled program.

The clusters are split into K folds.  For each configuration g of a grid and
each fold f, a model theta_{g,f} minimises R_k (eq. 18-20, ``bilevel.py``) on
the clusters outside f; every ``eval_every`` outer steps its prediction loss
L(theta) on the clusters of f is recorded.  The cross-validated curve of g is

    CV_g(t) = sum_f sum_{i in f} w_i L_i(theta_{g,f,t}) / sum_i w_i,

and the chosen configuration and number of outer steps are the (g, t) that
minimise it, as boosting libraries choose their number of rounds.  With
``one_se=True`` the choice is the fewest steps (then the lowest CV) among the
(g, t) whose CV is within one standard error of the minimum (the SE of the
fold losses at the minimum, across folds).  The final model is refitted on all
clusters with configuration g for t steps.

Configurations that differ only in alpha, inner_lr (eta) and learning_rate
share array shapes: they and the K folds form one batch of models whose
parameters, Adam states, hyperparameters and per-cluster fold weights carry a
leading model axis; one jitted ``lax.scan`` runs ``eval_every`` outer steps
of all of them (batched by ``jax.vmap`` on an accelerator, in turn by
``lax.map`` inside the same program on a CPU), and a second jitted function
evaluates them all on their held-out folds.  Each model's training step
touches only its own training clusters (the held-out fold is gathered out,
not weighted zero), and a configuration whose curve has not improved for
``patience`` steps stops training while the others go on (on a CPU, where
the models run in turn, a stopped model costs nothing).  The curves are
computed in ``cv_dtype`` (float32 by default: 2-3x faster on a CPU, and its
rounding, about 1e-3 of the loss after hundreds of steps, is far below the
SE across folds that separates configurations); the refit on all clusters
uses the fit's own ``dtype``.  Settings that change shapes or
the program (inner_steps, hidden, model, activation, first_order, penalty,
width) start another batch: one compilation per batch, not per model.

A row "mean" in the table is the constant predictor (the training folds'
mean outcome, or its log-odds for the logistic loss) scored the same way: a
configuration that does not beat it has learnt nothing that generalises to
new clusters.
"""
from __future__ import annotations

import itertools
import sys
import warnings
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from . import alerts, minibatch
from .bilevel import Objective, floats_as, gather, observation_weights
from .layout import make_buckets
from .progress import wants_bar
from .train import constant_loss, optimizer, outer_step

# alpha, eta and the learning rate are traced: one program serves every value.
TRACED = ("alpha", "inner_lr", "learning_rate")
# settings that change the compiled program: a separate batch per combination.
STATIC = ("model", "hidden", "activation", "inner_steps", "first_order", "penalty",
          "width", "steps")

# ERM (alpha = 1) and MAML (alpha = 0) are in it, so the table itself says
# whether the regularisation helps on the user's data.  9 configurations.
DEFAULT_GRID = {
    "alpha": [1.0, 0.75, 0.5, 0.25, 0.0],
    "inner_lr": [0.1, 0.3],
}


def expand_grid(grid, base: dict) -> list[dict]:
    """The grid (a dict of candidate lists, or a list of such dicts) as a list
    of full configurations, without duplicates.  With alpha = 1 the inner loop
    has no weight, so eta and k are irrelevant and set to base values."""
    if grid is None:
        grid = DEFAULT_GRID
    if isinstance(grid, dict):
        grid = [grid]
    if not isinstance(grid, (list, tuple)) or not grid:
        raise TypeError("grid must be a dict of candidate lists (e.g. {'alpha': [1, 0.5, 0]}) "
                        "or a list of such dicts")
    configs, seen = [], set()
    for part in grid:
        if not isinstance(part, dict):
            raise TypeError(f"each grid part must be a dict of candidate lists, got {type(part).__name__}")
        unknown = set(part) - set(TRACED) - set(STATIC)
        if unknown:
            raise ValueError(f"grid setting(s) {sorted(unknown)} cannot be tuned; tunable: "
                             f"{sorted(TRACED + STATIC)}")
        keys = list(part)
        values = []
        for k in keys:
            v = part[k]
            if isinstance(v, (str, int, float)) or (k == "hidden" and v and
                                                    all(isinstance(h, (int, np.integer)) for h in v)):
                raise TypeError(f"grid['{k}'] must be a list of candidates, e.g. "
                                f"{{'{k}': [{v!r}]}}")
            if len(v) == 0:
                raise ValueError(f"grid['{k}'] is empty: give at least one candidate")
            values.append(list(v))
        for combo in itertools.product(*values):
            c = {**base, **dict(zip(keys, combo))}
            if "hidden" in c and c["hidden"] is not None:
                c["hidden"] = tuple(int(h) for h in c["hidden"])
            if float(c["alpha"]) == 1.0:
                c["inner_lr"], c["inner_steps"] = base["inner_lr"], base["inner_steps"]
            key = tuple(sorted((k, _hashable(v)) for k, v in c.items()))
            if key not in seen:
                seen.add(key)
                configs.append(c)
    return configs


def _hashable(v):
    """A grid value as a dictionary key (lists and arrays, e.g. case weights, as tuples)."""
    return tuple(np.asarray(v).tolist()) if isinstance(v, (list, np.ndarray)) else v


def cluster_folds(cluster_codes: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold of each cluster code (0..G-1): a seeded permutation cut into
    ``folds`` parts of nearly equal numbers of clusters."""
    g = int(cluster_codes.max()) + 1
    if not 2 <= folds <= g:
        raise ValueError(f"folds must be between 2 and the number of clusters ({g}), got {folds}")
    fold = np.empty(g, dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(g)] = np.arange(g) % folds
    return fold


def training_picks(buckets_np, fold, folds):
    """Per bucket, the positions of each fold's training clusters (those
    outside the fold), padded to the longest fold with position 0 and a
    weight of 0: ``(picks, valid)``, each a list of (folds, m_b) arrays.  A
    model gathers its own clusters (``minibatch.select``) once per chunk of
    steps, so that its step costs (K-1)/K of a step on all clusters."""
    picks, valid = [], []
    for b in buckets_np:
        own = [np.flatnonzero(fold[b.clusters] != f) for f in range(folds)]
        m = max(1, max(len(o) for o in own))
        picks.append(np.stack([np.pad(o, (0, m - len(o))) for o in own]))
        valid.append(np.stack([np.arange(m) < len(o) for o in own]).astype(float))
    return picks, valid


def _weighted(buckets, cluster_weight):
    """The buckets with each cluster's weights multiplied by its fold weight."""
    return [dict(b, w=b["w"] * cw[:, None]) for b, cw in zip(buckets, cluster_weight)]


def _over_models(f, sequential, *args):
    """f applied to every model (leading axis of each argument): batched with
    ``vmap`` (accelerators), or one model after another with ``lax.map``
    inside the same program (CPU, where batching many small matrix products
    measured about 2x slower than running them in turn: bench/RESULTS.md)."""
    if sequential:
        return jax.lax.map(lambda a: f(*a), args)
    return jax.vmap(f)(*args)


@partial(jax.jit, static_argnames=("objective", "clip_norm", "length", "sequential"))
def batch_chunk(params, opt_state, hyper, picks, valid, active, buckets, objective, clip_norm,
                length, sequential=False):
    """``length`` outer steps (``train.outer_step``) of every model of the
    batch (leading axis of params, opt_state, hyper, picks, valid and
    active), each on its own training clusters, in one compiled program.  A
    model with ``active`` false is left as it is (run in turn, it is
    skipped; batched, its update is computed and discarded)."""
    opt = optimizer(clip_norm)

    def one_model(p, s, h, pick, ok, on):
        # its own training clusters: padded picks weigh 0 (``training_picks``)
        own = minibatch.select(buckets, pick, [v[:, None] for v in ok])

        def step(carry, _):
            p, s, value = outer_step(objective, opt, *carry, h, own)
            return (p, s), value

        def run(p, s):
            (p, s), _ = jax.lax.scan(step, (p, s), None, length=length)
            return p, s

        if sequential:
            return jax.lax.cond(on, run, lambda p, s: (p, s), p, s)
        new_p, new_s = run(p, s)
        keep = lambda a, b: jnp.where(on, a, b)
        return jax.tree.map(keep, new_p, p), jax.tree.map(keep, new_s, s)

    return _over_models(one_model, sequential, params, opt_state, hyper, picks, valid, active)


@partial(jax.jit, static_argnames=("objective", "sequential"))
def batch_heldout(params, heldout_weight, buckets, objective, sequential=False):
    """Prediction loss L(theta) of every model on its held-out fold."""
    return _over_models(lambda p, vw: objective.pooled(p, _weighted(buckets, vw)), sequential,
                        params, heldout_weight)


def train_members(objective, init, x, y, cluster, w, hyper: dict, steps: int, seeds,
                  clip_norm=1.0, eval_every=10, dtype="float64", sequential=None):
    """An ensemble: one model per seed (its random start), each trained on
    every cluster for ``steps`` outer steps at the same settings, all in one
    compiled program (``batch_chunk``).  Returns the parameters stacked on a
    leading member axis, in float64."""
    dt = jnp.dtype(dtype)
    if sequential is None:
        sequential = jax.default_backend() == "cpu"
    buckets_np = make_buckets(cluster)
    buckets = gather(buckets_np, x, y, w, dt)
    n = len(seeds)
    picks = [jnp.asarray(np.tile(np.arange(len(b.clusters)), (n, 1))) for b in buckets_np]
    valid = [jnp.ones((n, len(b.clusters)), dtype=dt) for b in buckets_np]
    h = {k: jnp.full(n, float(hyper[k]), dtype=dt) for k in TRACED}
    first = floats_as(jax.tree.map(lambda a: jnp.asarray(np.asarray(a)[:1]), x), dt)
    starts = [floats_as(init(jax.random.PRNGKey(int(s)), first), dt) for s in seeds]
    params = jax.tree.map(lambda *a: jnp.stack(a), *starts)
    opt_state = jax.vmap(optimizer(clip_norm).init)(params)
    on = jnp.ones(n, dtype=bool)
    step = 0
    while step < steps:
        length = min(eval_every, steps - step)
        params, opt_state = batch_chunk(params, opt_state, h, picks, valid, on, buckets,
                                        objective, clip_norm, length, sequential)
        step += length
    return floats_as(jax.tree.map(np.asarray, params), np.float64)


@dataclass
class CVResult:
    """The cross-validation: one row per configuration (and one for the
    constant predictor), the chosen row, and the curves CV_g(t)."""
    configs: list
    loss: np.ndarray           # (G,) min_t CV_g(t)
    se: np.ndarray             # (G,) SE across folds at that t
    best_step: np.ndarray      # (G,)
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

    def table(self) -> list[dict]:
        """Rows: the tuned settings, mean held-out loss, its SE across folds,
        the chosen step, and whether the row was chosen."""
        keys = [k for k in TRACED + STATIC if any(k in c for c in self.configs)
                and len({_hashable(c.get(k)) for c in self.configs}) > 1]
        keys = keys or ["alpha"]
        rows = []
        for g, c in enumerate(self.configs):
            row = {k: c.get(k) for k in keys}
            if float(c["alpha"]) == 1.0:
                for k in ("inner_lr", "inner_steps"):
                    if k in row:
                        row[k] = None   # no inner loop at alpha = 1
            row.update(cv_loss=float(self.loss[g]), se=float(self.se[g]),
                       step=int(self.best_step[g]), chosen=g == self.chosen)
            rows.append(row)
        rows.append({**{k: None for k in keys}, "cv_loss": self.mean_loss, "se": self.mean_se,
                     "step": 0, "chosen": False})
        return rows

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
        lines = [f"cross-validation over {len(self.configs)} configuration(s) x {self.folds} "
                 f"cluster folds{' (one-SE rule)' if self.one_se else ''}:"]
        rows = self.table()
        keys = [k for k in rows[0] if k not in ("cv_loss", "se", "step", "chosen")]
        head = "  ".join(f"{k:>13s}" for k in keys) + "      cv_loss         se   step"
        lines.append(head)
        order = np.argsort(self.loss)
        for g in list(order) + [len(rows) - 1]:
            r = rows[g]
            label = "  ".join(f"{_fmt(r[k]):>13s}" for k in keys)
            if g == len(rows) - 1:
                label = f"{'mean (no model)':>{len(label)}s}"
            mark = "  <- chosen" if r["chosen"] else ""
            lines.append(f"{label}  {r['cv_loss']:11.5g}  {r['se']:9.3g}  {r['step']:5d}{mark}")
        return "\n".join(lines)

    def plot(self, path=None):
        """CV_g(t) for every configuration, the chosen one highlighted, and
        the constant predictor as a dashed line."""
        from .plots import cv_curves
        return cv_curves(self, path)


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _static_key(c):
    return tuple((k, _hashable(c.get(k))) for k in STATIC)


def _constant_cv(y, w, cluster, fold, folds, loss):
    """Held-out loss of the constant predictor (``train.constant_loss``: the
    training folds' weighted mean), per fold."""
    f_of_row = fold[cluster]
    return np.array([constant_loss(y, w, np.flatnonzero(f_of_row != f),
                                   np.flatnonzero(f_of_row == f), loss) for f in range(folds)])


def cross_validate(objective_for, init_for, x, y, cluster, w, configs, *, folds=5, seed=0,
                   max_steps=1000, eval_every=10, patience=200, min_steps=0, clip_norm=1.0,
                   loss="squared", one_se=False, progress=None, sequential=None,
                   dtype="float64") -> CVResult:
    """Train every configuration on every split of the clusters into K folds
    (batched by shape group) and choose (g, t) by the mean held-out curve.

    ``objective_for(config)`` and ``init_for(config)`` give the Objective and
    the parameter initialiser of a configuration; x, y are already scaled;
    ``cluster`` holds codes 0..G-1; ``w`` the observation weights.
    """
    fold = cluster_folds(cluster, folds, seed)
    buckets_np = make_buckets(cluster)
    dt = jnp.dtype(dtype)   # training precision (the curves are kept in float64)
    buckets = gather(buckets_np, x, y, w, dt)
    # per bucket, per fold: which clusters train (1) and which are held out (1)
    # per bucket, per fold: which clusters are held out (1), and each fold's
    # own training clusters (``training_picks``)
    in_fold = [np.stack([(fold[b.clusters] == f).astype(float) for f in range(folds)])
               for b in buckets_np]
    picks_np, valid_np = training_picks(buckets_np, fold, folds)
    dens = np.array([np.sum(w[fold[cluster] == f]) for f in range(folds)])
    mean_losses = _constant_cv(y, w, cluster, fold, folds, loss)
    mean_loss = float(np.sum(mean_losses * dens) / np.sum(dens))
    mean_se = float(np.std(mean_losses, ddof=1) / np.sqrt(folds))

    groups = {}
    for g, c in enumerate(configs):
        groups.setdefault(_static_key(c), []).append(g)
    n_evals = -(-max_steps // eval_every)
    fold_curves = np.full((len(configs), n_evals, folds), np.inf)   # per-fold held-out loss
    last_eval = np.zeros(len(configs), dtype=int)

    if sequential is None:   # models in turn on a CPU, batched on an accelerator
        sequential = jax.default_backend() == "cpu"
    total, done = len(groups) * max_steps, 0
    first_kept = min(int(min_steps), int(max_steps))   # no step before it is chosen
    bar = _bar(progress, total)
    first = jax.tree.map(lambda a: jnp.asarray(np.asarray(a)[:1]), x)
    try:
        for members in groups.values():
            c0 = configs[members[0]]
            objective = objective_for(c0)
            # models: config-major, fold-minor
            n_models = len(members) * folds
            hyper = {k: jnp.asarray(np.repeat([float(configs[g][k]) if not (
                k == "inner_lr" and float(configs[g]["alpha"]) == 1.0) else 0.0
                for g in members], folds), dtype=dt) for k in TRACED}
            picks = [jnp.asarray(np.tile(pk, (len(members), 1))) for pk in picks_np]
            valid = [jnp.asarray(np.tile(v, (len(members), 1)), dtype=dt) for v in valid_np]
            held_w = [jnp.asarray(np.tile(f, (len(members), 1)), dtype=dt) for f in in_fold]
            p0 = floats_as(init_for(c0)(jax.random.PRNGKey(seed), floats_as(first, dt)), dt)
            params = jax.tree.map(lambda a: jnp.broadcast_to(a, (n_models,) + a.shape), p0)
            opt_state = jax.vmap(optimizer(clip_norm).init)(params)
            best = np.full(len(members), np.inf)
            best_at = np.zeros(len(members), dtype=int)
            step, e = 0, 0
            while step < max_steps:
                length = min(eval_every, max_steps - step)
                # a configuration stops once its curve has not improved for
                # ``patience`` steps; the others go on
                active = np.ones(len(members), dtype=bool) if patience is None else \
                    step - np.maximum(best_at, first_kept) < patience
                params, opt_state = batch_chunk(
                    params, opt_state, hyper, picks, valid, jnp.asarray(np.repeat(active, folds)),
                    buckets, objective, clip_norm, length, sequential)
                step += length
                held = np.asarray(batch_heldout(params, held_w, buckets, objective, sequential))
                held = np.where(np.isfinite(held), held, np.inf).reshape(len(members), folds)
                on = np.asarray(members)[active]
                fold_curves[on, e] = held[active]
                last_eval[on] = e
                cv = np.where(active & (step >= first_kept), held @ dens / dens.sum(), np.inf)
                improved = cv < best
                best = np.where(improved, cv, best)
                best_at = np.where(improved, step, best_at)
                e += 1
                done += length
                if bar is not None:
                    bar.update(length)
                    bar.set_postfix(best=f"{np.min(best):.4g}", mean=f"{mean_loss:.4g}")
                elif callable(progress):
                    progress(done, total, float(np.min(best)), mean_loss)
                if patience is not None and np.all(step - np.maximum(best_at, first_kept) >= patience):
                    done += max_steps - step
                    if bar is not None:
                        bar.update(max_steps - step)
                    break
    finally:
        if bar is not None:
            bar.close()

    eval_steps = np.minimum((np.arange(n_evals) + 1) * eval_every, max_steps)
    cv_curves = fold_curves @ dens / dens.sum()                      # (G, n_evals)
    with np.errstate(invalid="ignore"):
        fold_se = np.std(fold_curves, axis=2, ddof=1) / np.sqrt(folds)
    fold_se = np.where(np.isfinite(fold_se), fold_se, np.inf)
    eligible = np.where(eval_steps >= first_kept, cv_curves, np.inf)   # steps that may be chosen
    best_e = np.argmin(eligible, axis=1)
    loss_g = cv_curves[np.arange(len(configs)), best_e]
    se_g = fold_se[np.arange(len(configs)), best_e]
    chosen = int(np.argmin(loss_g))
    chosen_e = int(best_e[chosen])
    if one_se and np.isfinite(loss_g[chosen]):
        bound = loss_g[chosen] + se_g[chosen]
        ok = np.argwhere(eligible <= bound)                          # (g, e) pairs
        ok = sorted(ok.tolist(), key=lambda ge: (eval_steps[ge[1]], cv_curves[ge[0], ge[1]]))
        chosen, chosen_e = ok[0]
    return CVResult(
        configs=configs, loss=loss_g, se=se_g, best_step=eval_steps[best_e],
        steps=[eval_steps[:last_eval[g] + 1] for g in range(len(configs))],
        curves=[cv_curves[g, :last_eval[g] + 1] for g in range(len(configs))],
        chosen=int(chosen), chosen_step=int(eval_steps[chosen_e]), mean_loss=mean_loss,
        mean_se=mean_se, folds=folds, one_se=one_se, max_steps=max_steps, fold_of_cluster=fold)


def _bar(progress, total):
    """A tqdm bar over every group's steps, or None (off, or the user's
    callback ``progress(done, total, best_cv, mean_cv)``)."""
    if callable(progress) or not wants_bar(progress):
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="rfp tune", unit="step", leave=False, file=sys.stderr)


def check_choice(cv: CVResult) -> None:
    """Warnings about the chosen row: every configuration diverged, no better
    than the constant predictor, chosen at the first evaluation, or at the
    last (not converged)."""
    loss = cv.loss[cv.chosen]
    if not np.isfinite(loss):
        warnings.warn("every configuration diverged in cross-validation: lower learning_rate "
                      "or inner_lr in the grid", alerts.DivergenceWarning, stacklevel=3)
        return
    if loss >= cv.mean_loss:
        warnings.warn(
            f"no configuration predicts held-out clusters better than their training mean "
            f"(cross-validated loss {loss:.4g} vs {cv.mean_loss:.4g}): the controls may not "
            f"predict the outcome across clusters; check the cv table (model.cv)",
            alerts.NoBetterThanMeanWarning, stacklevel=3)
    if cv.chosen_step == cv.steps[cv.chosen][0]:
        warnings.warn(
            f"the chosen configuration is best at the first evaluation (step "
            f"{cv.chosen_step}): the model kept is close to its random start; the controls "
            f"may not predict the outcome across clusters, or learning_rate is too high for "
            f"them (check model.cv)", alerts.StoppedAtOnceWarning, stacklevel=3)
    elif cv.chosen_step >= cv.max_steps:
        warnings.warn(
            f"the held-out loss was still falling at the last step ({cv.chosen_step}): "
            f"increase max_steps", alerts.NotConvergedWarning, stacklevel=3)
