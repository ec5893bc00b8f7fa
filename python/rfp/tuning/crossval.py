"""Settings chosen by K-fold cross-validation across whole clusters, with every
configuration x fold trained at once in one compiled program.

The clusters are split into K folds.  For each configuration g of a grid and
each fold f, a model theta_{g,f} minimises R_k (eq. 18-20, ``bilevel.py``) on
the clusters outside f; every ``eval_every`` outer steps its prediction loss
L(theta) on the clusters of f is recorded.  The cross-validated curve of g is

    CV_g(t) = sum_f sum_{i in f} w_i L_i(theta_{g,f,t}) / sum_i w_i,

and each configuration's number of outer steps is the t that minimises it,
as boosting libraries choose their number of rounds.

Candidates from simple to flexible.  Beside the network's configurations the
table holds the constant predictor (the training folds' mean outcome, or its
log-odds for the logistic loss) and the linear model at alpha = 1 and at the
grid's (alpha, k, eta), solved directly on each fold (``simple_candidates``):
every candidate is scored on the same held-out clusters, as per-cluster sums
of its held-out loss.  The choice is the simplest candidate (constant, linear,
linear with inner steps, network at alpha = 1, network with inner steps)
whose loss is within ``margin`` SEs of the best's, the SE being that of the
*paired* difference across clusters (``selection.simplest_within``): a
flexible model is preferred only when it beats the simpler ones by more than
the noise of the comparison.  With ``one_se=True`` a chosen network then
takes the fewest steps whose CV is within one SE (across folds) of its best.
The final model is refitted on all clusters with the chosen candidate.

Racing.  From step ``RACE_FROM`` on, a network configuration whose best
loss so far trails the leading configuration's by more than ``RACE_MARGIN``
paired SEs stops training (Maron & Moore 1994), as one whose curve has not
improved for ``patience`` steps does: the time goes to the configurations
still in contention.

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

The last row, "mean", is the constant predictor: a configuration that does
not beat it has learnt nothing that generalises to new clusters."""
from __future__ import annotations

import sys
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from rfp.core import minibatch
from rfp.core.bilevel import floats_as, gather
from rfp.core.closed_form import constant_fit
from rfp.core.layout import make_buckets
from rfp.progress import wants_bar
from rfp.training.train import optimizer, outer_step
from rfp.tuning.cv_result import CVResult, choose
from rfp.tuning.grid import TRACED, _static_key
from rfp.tuning.selection import MARGIN, cluster_sums, paired_difference
from rfp.tuning.simple_candidates import losses

# racing: from this step on, a configuration more than RACE_MARGIN paired SEs
# behind the leader stops training (``race``)
RACE_FROM = 100
RACE_MARGIN = 2.0


def fold_per_cluster(cluster_codes: np.ndarray, folds: int, seed: int) -> np.ndarray:
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
def batch_cluster_losses(params, buckets, objective, sequential=False):
    """Per model and bucket, sum_i w_i L_i(theta) over each cluster's rows
    (the prediction model alone): held-out losses by cluster."""
    def one(p):
        out = []
        for b in buckets:
            li = objective.row_losses(p, b).reshape(b["y"].shape)
            out.append(jnp.sum(b["w"] * li, axis=1))
        return out
    return _over_models(one, sequential, params)


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


def constant_sums(y, w, cluster, fold, folds, loss) -> np.ndarray:
    """Per-cluster sums of w_i L_i of the constant predictor (the training
    folds' weighted mean, its log-odds for the logistic loss) on held-out rows."""
    g = int(cluster.max()) + 1
    f_of_row = fold[cluster]
    sums = np.zeros(g)
    for f in range(folds):
        train, test = f_of_row != f, f_of_row == f
        c = constant_fit(y[train], w[train], loss).intercept
        sums += cluster_sums(losses(c, y[test], loss), cluster[test], g, w[test])
    return sums


def race(best, best_sums, size, active, step, race_from=RACE_FROM, margin=RACE_MARGIN):
    """Racing (Maron & Moore 1994): from step ``race_from`` on, a network
    configuration whose best held-out loss so far trails the leader's by more
    than ``margin`` paired SEs stops training.  ``best``: (G,) best loss so
    far of every configuration (inf: none yet); ``best_sums``: (G, clusters)
    its per-cluster sums there; ``active``: (G,) which still train."""
    if step < race_from or not np.isfinite(best).any():
        return active
    leader = int(np.argmin(best))
    keep = active.copy()
    for g in np.flatnonzero(active):
        if not np.isfinite(best[g]):
            continue
        d, se = paired_difference(best_sums[g], best_sums[leader], size)
        if d > margin * se:
            keep[g] = False
    return keep


def cross_validate(objective_for, init_for, x, y, cluster, w, configs, *, folds=5, seed=0,
                   fold=None, direct=(), max_steps=1000, eval_every=10, patience=200,
                   min_steps=0, clip_norm=1.0, loss="squared", one_se=False, margin=MARGIN,
                   racing=True, simple=True, progress=None, sequential=None,
                   dtype="float64") -> CVResult:
    """Train every network configuration on every split of the clusters into
    K folds (batched by shape group), score them and the candidates solved
    directly (``direct``: a list of (config, per-cluster held-out sums) on
    the same ``fold``) and the constant on the same held-out clusters, and
    choose the simplest within ``margin`` paired SEs of the best
    (``selection.simplest_within``; ``margin = 0``: the lowest loss).
    ``simple = False``: the constant is shown but cannot be chosen.

    ``objective_for(config)`` and ``init_for(config)`` give the Objective and
    the parameter initialiser of a configuration; x, y are already scaled;
    ``cluster`` holds codes 0..G-1; ``w`` the observation weights.
    """
    if fold is None:
        fold = fold_per_cluster(cluster, folds, seed)
    n_clusters = int(cluster.max()) + 1
    size = np.bincount(cluster, weights=w, minlength=n_clusters)          # s_c
    fold_onehot = (fold[:, None] == np.arange(folds)[None, :]).astype(float)
    dens = size @ fold_onehot                                              # weight per fold
    mean_sums = constant_sums(y, w, cluster, fold, folds, loss)
    mean_loss = float(mean_sums.sum() / size.sum())
    mean_se = float(np.std(mean_sums @ fold_onehot / dens, ddof=1) / np.sqrt(folds))

    n_evals = -(-max_steps // eval_every)
    fold_curves = np.full((len(configs), n_evals, folds), np.inf)   # per-fold held-out loss
    last_eval = np.zeros(len(configs), dtype=int)
    best = np.full(len(configs), np.inf)              # best held-out loss so far
    best_at = np.zeros(len(configs), dtype=int)
    best_sums = np.full((len(configs), n_clusters), np.inf)
    groups = {}
    for g, c in enumerate(configs):
        groups.setdefault(_static_key(c), []).append(g)

    if sequential is None:   # models in turn on a CPU, batched on an accelerator
        sequential = jax.default_backend() == "cpu"
    total, done = len(groups) * max_steps, 0
    first_kept = min(int(min_steps), int(max_steps))   # no step before it is chosen
    bar = _bar(progress, total)
    first = jax.tree.map(lambda a: jnp.asarray(np.asarray(a)[:1]), x)
    if configs:
        buckets_np = make_buckets(cluster)
        dt = jnp.dtype(dtype)   # training precision (the curves are kept in float64)
        buckets = gather(buckets_np, x, y, w, dt)
        bucket_codes = np.concatenate([b.clusters for b in buckets_np])
        picks_np, valid_np = training_picks(buckets_np, fold, folds)
    try:
        for members in groups.values():
            members = np.asarray(members)
            c0 = configs[members[0]]
            objective = objective_for(c0)
            # models: config-major, fold-minor
            n_models = len(members) * folds
            hyper = {k: jnp.asarray(np.repeat([float(configs[g][k]) if not (
                k == "inner_lr" and float(configs[g]["alpha"]) == 1.0) else 0.0
                for g in members], folds), dtype=dt) for k in TRACED}
            picks = [jnp.asarray(np.tile(pk, (len(members), 1))) for pk in picks_np]
            valid = [jnp.asarray(np.tile(v, (len(members), 1)), dtype=dt) for v in valid_np]
            p0 = floats_as(init_for(c0)(jax.random.PRNGKey(seed), floats_as(first, dt)), dt)
            params = jax.tree.map(lambda a: jnp.broadcast_to(a, (n_models,) + a.shape), p0)
            opt_state = jax.vmap(optimizer(clip_norm).init)(params)
            active = np.ones(len(members), dtype=bool)
            step, e = 0, 0
            while step < max_steps and active.any():
                length = min(eval_every, max_steps - step)
                params, opt_state = batch_chunk(
                    params, opt_state, hyper, picks, valid, jnp.asarray(np.repeat(active, folds)),
                    buckets, objective, clip_norm, length, sequential)
                step += length
                by_bucket = batch_cluster_losses(params, buckets, objective, sequential)
                held = np.empty((n_models, n_clusters))
                held[:, bucket_codes] = np.concatenate([np.asarray(v) for v in by_bucket], axis=1)
                # each cluster scored by the model of its own fold: (configs, clusters)
                sums = held.reshape(len(members), folds, n_clusters)[:, fold,
                                                                     np.arange(n_clusters)]
                sums = np.where(np.isfinite(sums), sums, np.inf)
                on = members[active]
                fold_curves[on, e] = (sums @ fold_onehot / dens)[active]
                last_eval[on] = e
                cv = np.where(active & (step >= first_kept), sums.sum(axis=1) / size.sum(), np.inf)
                improved = cv < best[members]
                best[members[improved]] = cv[improved]
                best_at[members[improved]] = step
                best_sums[members[improved]] = sums[improved]
                # a configuration stops once its curve has not improved for
                # ``patience`` steps, or once it trails the leader (``race``)
                if patience is not None:
                    active &= step - np.maximum(best_at[members], first_kept) < patience
                if racing:
                    raced = race(best, best_sums, size, np.isin(np.arange(len(configs)),
                                                                members[active]), step)
                    active &= raced[members]
                e += 1
                done += length
                if bar is not None:
                    bar.update(length)
                    bar.set_postfix(best=f"{np.min(best):.4g}", mean=f"{mean_loss:.4g}")
                elif callable(progress):
                    progress(done, total, float(np.min(best)), mean_loss)
            if step < max_steps:   # the group stopped early: the bar moves to its end
                done += max_steps - step
                if bar is not None:
                    bar.update(max_steps - step)
    finally:
        if bar is not None:
            bar.close()

    eval_steps = np.minimum((np.arange(n_evals) + 1) * eval_every, max_steps)
    cv_curves = fold_curves @ dens / dens.sum()                      # (G, n_evals)
    with np.errstate(invalid="ignore"):
        fold_se = np.std(fold_curves, axis=2, ddof=1) / np.sqrt(folds)
    fold_se = np.where(np.isfinite(fold_se), fold_se, np.inf)
    eligible = np.where(eval_steps >= first_kept, cv_curves, np.inf)   # steps that may be chosen
    best_e = np.argmin(eligible, axis=1) if configs else np.zeros(0, dtype=int)
    rows = np.arange(len(configs))
    net_loss, net_se = cv_curves[rows, best_e], fold_se[rows, best_e]
    net_steps = eval_steps[best_e]

    # the direct candidates first (simple to flexible), then the network, then the mean
    all_configs = [c for c, _ in direct] + list(configs)
    all_sums = [s for _, s in direct] + [best_sums[g] for g in rows] + [mean_sums]
    d_loss = [float(s.sum() / size.sum()) for _, s in direct]
    d_se = [float(np.std((s @ fold_onehot) / dens, ddof=1) / np.sqrt(folds)) for _, s in direct]
    loss_all = np.r_[d_loss, net_loss]
    chosen, best_g = choose(all_configs, loss_all, mean_loss, all_sums, size, margin, simple)
    diff, se_diff = np.empty(len(all_sums)), np.empty(len(all_sums))
    for g in range(len(all_sums)):
        diff[g], se_diff[g] = paired_difference(all_sums[g], all_sums[best_g], size)
    n_direct = len(direct)
    chosen_step = 0
    if n_direct <= chosen < len(all_configs):
        g = chosen - n_direct
        chosen_e = int(best_e[g])
        if one_se and np.isfinite(net_loss[g]):   # fewest steps within one SE across folds
            bound = net_loss[g] + net_se[g]
            ok = np.argwhere(eligible <= bound)                          # (g, e) pairs
            ok = sorted(ok.tolist(), key=lambda ge: (eval_steps[ge[1]], cv_curves[ge[0], ge[1]]))
            g, chosen_e = ok[0]
            chosen = n_direct + g
        chosen_step = int(eval_steps[chosen_e])
    return CVResult(
        configs=all_configs, loss=loss_all, se=np.r_[d_se, net_se],
        best_step=np.r_[np.zeros(n_direct, dtype=int), net_steps].astype(int),
        steps=[np.zeros(1, dtype=int)] * n_direct +
        [eval_steps[:last_eval[g] + 1] for g in rows],
        curves=[np.array([v]) for v in d_loss] + [cv_curves[g, :last_eval[g] + 1] for g in rows],
        chosen=int(chosen), chosen_step=chosen_step, mean_loss=mean_loss,
        mean_se=mean_se, folds=folds, one_se=one_se, max_steps=max_steps, fold_of_cluster=fold,
        diff=diff, se_diff=se_diff, margin=float(margin), sums=all_sums, size=size)


def _bar(progress, total):
    """A tqdm bar over every group's steps, or None (off, or the user's
    callback ``progress(done, total, best_cv, mean_cv)``)."""
    if callable(progress) or not wants_bar(progress):
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="rfp tune", unit="step", leave=False, file=sys.stderr)
