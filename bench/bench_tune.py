"""rfp.tune (every configuration x fold in one vmapped program) against a
Python loop of ``rfp.fit_arrays`` over the same configurations and folds.

Both sides train the same models: the default grid (9 configurations) x 5
folds of whole clusters, ``--steps`` outer steps each, no early stopping, on
the README's data (tragic triad, 40 clusters x 30).  Each side runs in a fresh
process (compilation included, as a user meets it), alternating A B A B, and
the ratio loop / tune is printed per pair and as the median.

    .venv/bin/python bench/bench_tune.py --repeats 3 --steps 200
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import rfp
from rfp.settings import DEFAULTS
from rfp.tuning.crossval import fold_per_cluster
from rfp.tuning.grid import expand_grid
from rfp.simulate import tragic_triad
side, steps, folds, loop_dtype = sys.argv[1], int(sys.argv[2]), 5, sys.argv[3]
sim = tragic_triad(n_clusters=40, seed=1)
x = sim.data["x"].to_numpy()[:, None]; y = sim.data["y"].to_numpy()
cluster = sim.data["cluster"].to_numpy()
t1 = time.perf_counter()
if side == "tune":
    m = rfp.tune_arrays(x, y, cluster, max_steps=steps, patience=None, folds=folds,
                        progress=False)
    n_models = len(m.cv.configs) * folds
else:
    configs = expand_grid(None, dict(DEFAULTS))
    fold = fold_per_cluster(cluster, folds, 0)[cluster]
    n_models = 0
    for c in configs:
        s = {k: c[k] for k in ("alpha", "inner_lr", "inner_steps", "learning_rate")}
        for f in range(folds):
            tr = fold != f
            rfp.fit_arrays(x[tr], y[tr], cluster[tr], max_steps=steps, patience=None,
                           progress=False, dtype=loop_dtype, **s)
            n_models += 1
print(json.dumps({"models": n_models, "seconds": time.perf_counter() - t1,
                  "import": t1 - t0}))
"""


def run(side, steps, loop_dtype="float64"):
    out = subprocess.run([sys.executable, "-c", CHILD, side, str(steps), loop_dtype],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--loop-dtype", default="float64",
                   help="precision of the loop's fits (tune's cross-validation runs in "
                        "float32 by default, its refit in float64)")
    a = p.parse_args(argv)
    ratios = []
    for r in range(a.repeats):
        tune, loop = run("tune", a.steps), run("loop", a.steps, a.loop_dtype)
        per_tune, per_loop = tune["seconds"] / tune["models"], loop["seconds"] / loop["models"]
        ratios.append(per_loop / per_tune)
        print(f"pair {r + 1}: tune {tune['models']} models {tune['seconds']:.1f}s "
              f"({per_tune:.2f} s/model, refit included); loop {loop['models']} fits "
              f"{loop['seconds']:.1f}s ({per_loop:.2f} s/model); loop/tune per model "
              f"{ratios[-1]:.2f}x", flush=True)
    print(f"median loop/tune per trained model: {statistics.median(ratios):.2f}x "
          f"({a.repeats} pairs, {a.steps} steps, loop in {a.loop_dtype}, fresh processes, "
          f"compilation included)")


if __name__ == "__main__":
    main()
