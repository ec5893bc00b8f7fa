"""Which stopping rule should an untuned fit use?  (issue 9, point 2)

An untuned ``rfp.fit`` keeps the step with the lowest loss on its held-out
clusters (20% of them), evaluated every 10 steps, and stops after
``patience`` steps without improvement.  With few clusters that held-out
curve is noisy and can be lowest at its first evaluation by chance.  This
runner trains the README's call (``alpha = 0.5``, ``inner_steps = 1``, every
other setting at its default) for ``max_steps`` steps without stopping,
records at each evaluation the held-out loss and the error against the truth
on 50 fresh clusters, and then applies each candidate rule to the same curve:

- current: the lowest held-out loss, stopping after ``patience`` (200) steps
  without improvement (the rule of ``train.py`` today);
- min<S>: the same, but no step before S counts (patience counts from S);
- smooth<m>: the lowest trailing mean of m evaluations, with the same patience;
- last: the last step; oracle: the best step for the fresh clusters (not a
  rule, a bound).

    .venv/bin/python validation/stopping_rule.py --design tt-low,tt-high \\
        --seeds 100-129 --out validation/stopping_rule_raw.csv
    .venv/bin/python validation/stopping_rule.py --summary validation/stopping_rule_raw.csv

The runner resumes: (design, seed) pairs already in the file are skipped.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from rfp.training.fit import _config, _design, _model_for
from rfp.core.bilevel import Objective, floats_as, gather, observation_weights
from rfp.core.layout import make_buckets
from rfp.simulate import held_out
from rfp.training.train import chunk, optimizer, pooled_loss, split_clusters

sys.path.insert(0, os.path.dirname(__file__))
from tuning_study import design  # noqa: E402
import resume  # noqa: E402

RULES = ("current", "min50", "min100", "min200", "smooth3", "smooth5", "min100_smooth3",
         "last", "oracle")


def curves(name: str, seed: int, max_steps: int):
    """Held-out loss (validation clusters) and error on fresh clusters at
    every evaluation of the README's untuned call, trained without stopping."""
    sim = design(name, seed)
    test = held_out(sim, 50, seed=10_000 + seed)
    cols = sim.x_names
    x = np.column_stack([sim.data[c].to_numpy() for c in cols])
    xt = np.column_stack([test.data[c].to_numpy() for c in cols])
    y = sim.data["y"].to_numpy()
    cluster = sim.data["cluster"].to_numpy()
    config = _config({"model": "mlp", "seed": seed})
    xs, y_fit, codes, _, scaler = _design(x, y, cluster, "mlp", config, True)
    m = _model_for(config, "mlp")
    objective = Objective(m.apply, "squared", config["inner_steps"], 0.0)
    w = observation_weights(codes)
    train_codes, val_codes = split_clusters(codes, config["validation_share"], seed)
    rows_t = np.flatnonzero(np.isin(codes, train_codes))
    rows_v = np.flatnonzero(np.isin(codes, val_codes))
    tb = gather(make_buckets(codes, rows_t), xs, y_fit, w)
    vb = gather(make_buckets(codes, rows_v), xs, y_fit, w)
    params = m.init(jax.random.PRNGKey(seed), jnp.asarray(xs[:1]))
    opt_settings = (config["clip_norm"], "constant", 1)
    state = optimizer(*opt_settings).init(params)
    hyper = {"alpha": jnp.asarray(config["alpha"]), "inner_lr": jnp.asarray(config["inner_lr"]),
             "learning_rate": jnp.asarray(config["learning_rate"])}
    xt_s, mu = jnp.asarray(scaler.x(xt)), test.data["mu"].to_numpy()
    val, err = [], []
    for _ in range(max_steps // config["eval_every"]):
        params, state, _ = chunk(params, state, hyper, tb, objective, opt_settings,
                                 config["eval_every"])
        val.append(float(pooled_loss(params, vb, objective)))
        pred = scaler.y_back(np.asarray(m.apply(params, xt_s)[0]))
        err.append(float(np.mean((pred - mu) ** 2)))
    return np.array(val), np.array(err), config["eval_every"], config["patience"]


def choose(val: np.ndarray, every: int, patience: int, min_step: int = 0, smooth: int = 1) -> int:
    """Index of the evaluation a rule keeps: the lowest (trailing mean of
    ``smooth`` evaluations of the) held-out loss among steps >= min_step,
    stopping once ``patience`` steps pass without improvement."""
    v = np.array([val[max(0, i - smooth + 1):i + 1].mean() for i in range(len(val))])
    best, best_i = np.inf, None
    for i in range(len(v)):
        step = (i + 1) * every
        if step < min_step:
            continue
        if v[i] < best:
            best, best_i = v[i], i
        elif step - (best_i + 1) * every >= patience:
            break
    return best_i


def rule_errors(val, err, every, patience) -> dict:
    picks = {
        "current": choose(val, every, patience),
        "min50": choose(val, every, patience, min_step=50),
        "min100": choose(val, every, patience, min_step=100),
        "min200": choose(val, every, patience, min_step=200),
        "smooth3": choose(val, every, patience, smooth=3),
        "smooth5": choose(val, every, patience, smooth=5),
        "min100_smooth3": choose(val, every, patience, min_step=100, smooth=3),
        "last": len(err) - 1,
        "oracle": int(np.argmin(err)),
    }
    return {r: (float(err[i]), (i + 1) * every) for r, i in picks.items()}


def summary(path: str) -> None:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for name in sorted({r["design"] for r in rows}):
        sub = [r for r in rows if r["design"] == name]
        seeds = sorted({int(r["seed"]) for r in sub})
        err = {rule: np.array([float(next(r["mse"] for r in sub if int(r["seed"]) == s
                                          and r["rule"] == rule)) for s in seeds]) for rule in RULES}
        step = {rule: np.array([int(next(r["step"] for r in sub if int(r["seed"]) == s
                                         and r["rule"] == rule)) for s in seeds]) for rule in RULES}
        print(f"\n## {name} ({len(seeds)} seeds: {seeds[0]}-{seeds[-1]})\n")
        print("| rule | mean error | rule − current | SE | z | lower / higher than current "
              "| kept step 10 | median step |")
        print("|---|---|---|---|---|---|---|---|")
        for rule in RULES:
            d = err[rule] - err["current"]
            se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan
            z = d.mean() / se if se and se > 0 else float("nan")
            print(f"| {rule} | {err[rule].mean():.4f} | {d.mean():+.4f} | {se:.4f} | {z:+.2f} | "
                  f"{np.sum(d < -1e-12)} / {np.sum(d > 1e-12)} | {np.sum(step[rule] == 10)} | "
                  f"{int(np.median(step[rule]))} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--design", default="tt-low,tt-high")
    p.add_argument("--seeds", help="e.g. 100-129")
    p.add_argument("--max-steps", type=int, default=2000)
    p.add_argument("--out", default="validation/stopping_rule_raw.csv")
    p.add_argument("--summary", metavar="CSV")
    a = p.parse_args(argv)
    if a.summary:
        return summary(a.summary)
    def one_sample(name, seed):
        val, err, every, patience = curves(name, seed, a.max_steps)
        return [dict(design=name, seed=seed, rule=rule, mse=e, step=step)
                for rule, (e, step) in rule_errors(val, err, every, patience).items()]

    resume.run(a.out, resume.seeds_arg(a.seeds), a.design.split(","), one_sample,
               lambda name, seed, rows: print(name, seed, {r["rule"]: round(r["mse"], 3)
                                                           for r in rows}, flush=True))

if __name__ == "__main__":
    main()
