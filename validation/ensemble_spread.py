"""Does an ensemble reduce the seed-to-seed spread of a tuned fit?  (issue 9,
point 3)

For each data seed: ``rfp.tune`` with every default and ``ensemble = 20``
(20 refits at the chosen configuration and step, from model seeds
seed, ..., seed + 19, trained in one program).  Each member alone is one
"single fit"; four disjoint groups of five members are four "ensembles of
5".  Against the truth on 50 fresh clusters, per data seed: the spread (SD)
of the error across the 20 single fits and across the 4 ensembles, and their
mean errors.

    .venv/bin/python validation/ensemble_spread.py --design tt-low \\
        --seeds 100-111 --out validation/ensemble_spread_raw.csv
    .venv/bin/python validation/ensemble_spread.py --summary validation/ensemble_spread_raw.csv
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import warnings

import jax.numpy as jnp
import numpy as np

import rfp
from rfp.training.fitted import _forward_members
from rfp.simulate import held_out

sys.path.insert(0, os.path.dirname(__file__))
from tuning_study import design  # noqa: E402
import resume  # noqa: E402

MEMBERS, GROUP = 20, 5


def one_sample(name: str, seed: int) -> dict:
    sim = design(name, seed)
    test = held_out(sim, 50, seed=10_000 + seed)
    mu = test.data["mu"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = rfp.tune(sim.data, y="y", x=sim.x_names, cluster="cluster", progress=False,
                     seed=seed, ensemble=MEMBERS)
    xt = np.column_stack([test.data[c].to_numpy() for c in sim.x_names])
    z = np.asarray(_forward_members(m._apply(), m.members, jnp.asarray(m.scaler.x(xt))))
    preds = m.scaler.y_back(z)                                   # (members, rows)
    single = np.mean((preds - mu) ** 2, axis=1)
    groups = preds.reshape(MEMBERS // GROUP, GROUP, -1).mean(axis=1)
    ens = np.mean((groups - mu) ** 2, axis=1)
    return dict(design=name, seed=seed, alpha=m.config["alpha"], step=m.best_step,
                single_mean=single.mean(), single_sd=single.std(ddof=1),
                ensemble_mean=ens.mean(), ensemble_sd=ens.std(ddof=1),
                all20=float(np.mean((preds.mean(axis=0) - mu) ** 2)))


def summary(path: str) -> None:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for name in sorted({r["design"] for r in rows}):
        sub = [r for r in rows if r["design"] == name]
        get = lambda k: np.array([float(r[k]) for r in sub])
        n = len(sub)
        d_sd = get("ensemble_sd") - get("single_sd")
        d_mse = get("ensemble_mean") - get("single_mean")
        print(f"\n## {name} ({n} data seeds)\n")
        print("| quantity | single fit | ensemble of 5 | difference (SE) | ensemble lower in |")
        print("|---|---|---|---|---|")
        print(f"| SD of the error across model seeds | {get('single_sd').mean():.4f} | "
              f"{get('ensemble_sd').mean():.4f} | {d_sd.mean():+.4f} ({d_sd.std(ddof=1) / np.sqrt(n):.4f}) | "
              f"{np.sum(d_sd < 0)}/{n} |")
        print(f"| mean error | {get('single_mean').mean():.4f} | {get('ensemble_mean').mean():.4f} | "
              f"{d_mse.mean():+.4f} ({d_mse.std(ddof=1) / np.sqrt(n):.4f}) | {np.sum(d_mse < 0)}/{n} |")
        print(f"\nEnsemble of all 20: mean error {get('all20').mean():.4f}.")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--design", default="tt-low")
    p.add_argument("--seeds")
    p.add_argument("--out", default="validation/ensemble_spread_raw.csv")
    p.add_argument("--summary", metavar="CSV")
    a = p.parse_args(argv)
    if a.summary:
        return summary(a.summary)
    resume.run(a.out, resume.seeds_arg(a.seeds), a.design.split(","),
               lambda name, seed: [one_sample(name, seed)],
               lambda name, seed, rows: print({k: (round(float(v), 4) if isinstance(v, float)
                                                   else v) for k, v in rows[0].items()},
                                              flush=True))

if __name__ == "__main__":
    main()
