"""Speed variants of the default ``rfp.tune`` (issue 18): fewer folds and a
smaller network grid, against the default, on development seeds.

For each design and seed: a training sample (seed s) and 50 fresh clusters
(seed 10_000 + s), as ``tuning_study.py`` draws them; each variant is one
``rfp.tune`` call, timed, and scored by its mean squared error against the
true conditional mean on the fresh clusters.  Variants:

    default     rfp.tune with every default (5 folds, alpha in {1, 0.5, 0})
    folds3      folds = 3
    grid2       grid alpha in {1, 0} (inner_lr 0.1), 5 folds
    folds3_grid2  both

    .venv/bin/python validation/speed_variants.py --seeds 8100-8104 \
        --out validation/speed_variants_dev.csv
    .venv/bin/python validation/speed_variants.py --summary validation/speed_variants_dev.csv
    .venv/bin/python validation/speed_variants.py --seeds 9100-9119 --variants default,folds3 \
        --designs tt-low,tt-high,means-d2,means-d5,means-d10,means-d25 \
        --out validation/speed_variants.csv      # the confirmation

The decision rule is written in validation/TUNING.md ("Speed variants")
before the run.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
import warnings

import numpy as np

import rfp
from rfp.simulate import held_out

sys.path.insert(0, os.path.dirname(__file__))
from tuning_study import design  # noqa: E402

DESIGNS = ("tt-low", "tt-high", "means-d5", "means-d25")
VARIANTS = {"default": {}, "folds3": {"folds": 3}, "grid2": {"grid": {"alpha": [1.0, 0.0]}},
            "folds3_grid2": {"folds": 3, "grid": {"alpha": [1.0, 0.0]}}}


def seeds_of(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def run(seeds, out, designs=DESIGNS, variants=tuple(VARIANTS)):
    done = set()
    if os.path.exists(out):
        with open(out) as f:
            done = {(r["design"], int(r["seed"]), r["variant"]) for r in csv.DictReader(f)}
    new = not os.path.exists(out)
    with open(out, "a", newline="") as f:
        w = csv.DictWriter(f, ["design", "seed", "variant", "mse", "mean_mse", "seconds", "chosen"])
        if new:
            w.writeheader()
        for seed in seeds:
            for name in designs:
                sim = design(name, seed)
                test = held_out(sim, 50, seed=10_000 + seed)
                mu = test.data["mu"].to_numpy()
                mean_mse = float(np.mean((np.mean(sim.data["y"].to_numpy()) - mu) ** 2))
                for variant, settings in VARIANTS.items():
                    if variant not in variants or (name, seed, variant) in done:
                        continue
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        t = time.perf_counter()
                        m = rfp.tune(sim.data, y="y", x=sim.x_names, cluster="cluster",
                                     seed=seed, progress=False, **settings)
                        seconds = time.perf_counter() - t
                    mse = float(np.mean((m.predict(test.data, as_numpy=True) - mu) ** 2))
                    cfg = m.cv.chosen_config
                    chosen = "mean" if cfg is None else f"{cfg.get('model')}:{cfg.get('alpha')}"
                    w.writerow(dict(design=name, seed=seed, variant=variant, mse=mse,
                                    mean_mse=mean_mse, seconds=round(seconds, 2), chosen=chosen))
                    f.flush()
                    print(name, seed, variant, f"{mse:.4f}", f"{seconds:.1f}s", chosen,
                          file=sys.stderr)


def summary(path):
    import pandas as pd
    df = pd.read_csv(path)
    df["rel"] = df["mse"] / df["mean_mse"]
    print("| design | variant | samples | MSE / mean's | variant - default (MSE) | SE | seconds "
          "(median) | time / default |")
    print("|---|---|---|---|---|---|---|---|")
    for name, d in df.groupby("design", sort=False):
        wide = d.pivot_table(index="seed", columns="variant", values="mse")
        secs = d.pivot_table(index="seed", columns="variant", values="seconds")
        rel = d.pivot_table(index="seed", columns="variant", values="rel")
        for v in VARIANTS:
            if v not in wide:
                continue
            diff = (wide[v] - wide["default"]).dropna()
            se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.nan
            print(f"| {name} | {v} | {len(diff)} | {rel[v].mean():.3f} | {diff.mean():+.4f} | "
                  f"{se:.4f} | {secs[v].median():.1f} | "
                  f"{(secs[v] / secs['default']).median():.2f} |")
    avg = df.groupby(["variant", "design"])["rel"].mean().groupby("variant").mean()
    print("\nAverage over designs of MSE / the mean's MSE:",
          ", ".join(f"{v} {avg[v]:.3f}" for v in VARIANTS if v in avg))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="8100-8104")
    p.add_argument("--out", default="validation/speed_variants_dev.csv")
    p.add_argument("--summary", metavar="CSV")
    p.add_argument("--designs", default=",".join(DESIGNS),
                   help="comma-separated: tt-low, tt-high, means-d2, means-d5, means-d10, ...")
    p.add_argument("--variants", default=",".join(VARIANTS))
    a = p.parse_args()
    if a.summary:
        summary(a.summary)
    else:
        run(seeds_of(a.seeds), a.out, a.designs.split(","), a.variants.split(","))
