"""Reference fits for test-fit.R, made by the Python API alone.

Reads the raw training and new data written by R (full precision CSV),
builds the controls itself (dummies for the factor f, first level dropped),
fits with the settings the R test uses and writes predictions (and the
linear fit's cluster-adapted predictions on the new clusters) with 17
significant digits.  Usage: python python_reference.py train.csv new.csv out.csv
"""
import csv
import sys

import numpy as np
import rfp


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [r[k] for r in rows] for k in rows[0]}


def controls(raw):
    f = np.array(raw["f"])
    return {
        "x1": np.array(raw["x1"], dtype=float),
        "x2": np.array(raw["x2"], dtype=float),
        "fv": (f == "v").astype(float),
        "fw": (f == "w").astype(float),
    }


train_raw, new_raw = read(sys.argv[1]), read(sys.argv[2])
data = {**controls(train_raw), "y": np.array(train_raw["y"], dtype=float), "g": train_raw["g"]}
new = controls(new_raw)
x = ["x1", "x2", "fv", "fw"]
fits = {
    "linear": rfp.fit(data, y="y", x=x, cluster="g", model="linear", alpha=0.5, inner_steps=2,
                      inner_lr=0.1, max_steps=40, seed=3, progress=False),
    "mlp": rfp.fit(data, y="y", x=x, cluster="g", model="mlp", hidden=(8, 8), alpha=0.3,
                   inner_steps=1, max_steps=30, learning_rate=0.02, seed=5, progress=False),
}
with open(sys.argv[3], "w", newline="") as out:
    w = csv.writer(out)
    w.writerow([*fits, "linear_adapted"])
    preds = [m.predict(new, as_numpy=True) for m in fits.values()]
    # cluster-adapted predictions of the linear fit on the new clusters
    labelled = {**new, "y": np.array(new_raw["y"], dtype=float), "g": new_raw["g"]}
    preds.append(fits["linear"].predict_adapted(labelled, y="y", cluster="g", as_numpy=True))
    for row in zip(*preds):
        w.writerow([repr(float(v)) for v in row])
