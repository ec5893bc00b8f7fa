"""Exploratory (not a pre-registered claim): on the seeds of TEXT.md's
version-3 confirmation (23000-23019), does the bi-level objective help the
text network?  The default tune against the same tune restricted to the
text network at alpha = 1 (ERM; no simple candidates), on the same 100 new
clusters per seed; paired difference across seeds.

Usage: python validation/text_erm.py --out validation/text_erm_raw.csv
       python validation/text_erm.py --summary validation/text_erm_raw.csv
"""
from __future__ import annotations

import argparse
import csv
import warnings

import numpy as np


def one_seed(seed: int) -> dict:
    import rfp
    from rfp import simulate
    sim = simulate.text_clusters(seed=seed)
    new = simulate.held_out(sim, 100, seed + 50_000).data.to_pandas()
    out = {"seed": seed}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, kw in [("default", {}), ("erm", {"grid": {"alpha": [1.0]}, "simple": False})]:
            fit = rfp.tune(sim.data, "y", x=["x1"], text="title", cluster="cluster",
                           progress=False, **kw)
            p = fit.predict(new, as_numpy=True)
            out[f"{name}_mse_y"] = float(np.mean((new.y - p) ** 2))
            out[f"{name}_mse_mu"] = float(np.mean((new.mu - p) ** 2))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="validation/text_erm_raw.csv")
    ap.add_argument("--summary")
    args = ap.parse_args()
    if args.summary:
        import pandas as pd
        raw = pd.read_csv(args.summary)
        for t in ("mse_y", "mse_mu"):
            d = raw[f"default_{t}"] - raw[f"erm_{t}"]
            se = d.std(ddof=1) / np.sqrt(len(d))
            print(f"{t}: default {raw[f'default_{t}'].mean():.3f}, ERM {raw[f'erm_{t}'].mean():.3f}; "
                  f"default - ERM {d.mean():+.3f} (SE {se:.3f}), lower in {(d < 0).sum()}/{len(d)}")
        return
    with open(args.out, "w", newline="") as f:
        writer = None
        for seed in range(23000, 23020):
            row = one_seed(seed)
            if writer is None:
                writer = csv.DictWriter(f, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
            f.flush()
            print("seed", seed, flush=True)


if __name__ == "__main__":
    main()
