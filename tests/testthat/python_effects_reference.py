"""Reference effects for test-effects.R, made by the Python API alone.

Reads the data R wrote (full-precision CSV: y, d, x1, x2, z, g, s, d_within),
runs rfp.effect (dml, aipw ATE and ATT, t_learner), rfp.compare,
rfp.balance and two simulations with the settings the R tests use, and
writes every number as one long CSV (name, index, value) with 17
significant digits.
Usage: python python_effects_reference.py data.csv new.csv out.csv
"""
import csv
import sys
import warnings

import numpy as np
import rfp
from rfp.inference.weighted_mean import weighted_att

SETTINGS = dict(model="linear", max_steps=20, learning_rate=0.05)
X = ["x1", "x2", "z"]


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for k in rows[0]:
        values = [r[k] for r in rows]
        out[k] = values if k in ("g", "s") else np.array(values, dtype=float)
    return out


data, new = read(sys.argv[1]), read(sys.argv[2])
rows = []


def put(name, values):
    for i, v in enumerate(np.atleast_1d(np.asarray(values, dtype=float))):
        rows.append((name, i + 1, repr(float(v)).replace("nan", "NaN")))


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    common = dict(y="y", d="d", x=X, cluster="g", folds=2, seed=1, **SETTINGS)
    dml = rfp.effect(data, method="dml", **common)
    ate = rfp.effect(data, method="aipw", estimand="ATE", **common)
    att = rfp.effect(data, method="aipw", estimand="ATT", **common)
    learner = rfp.effect(data, "y", "d", X, "g", method="t_learner", seed=1, **SETTINGS)
    table = rfp.compare(data, "y", "d", X, "g", strata="s", truth={"ATE": 1.0, "ATT": 1.25},
                        folds=2, seed=1, **SETTINGS)

for name, e in (("dml", dml), ("aipw_ATE", ate), ("aipw_ATT", att)):
    put(f"{name}.estimate", e.estimate)
    put(f"{name}.std_error", e.std_error)
    put(f"{name}.ci", [e.ci_low, e.ci_high])
    put(f"{name}.variance_share", e.diagnostics["variance_share"])
    put(f"{name}.ess", e.diagnostics["ess"])
put("dml.g", dml.nuisance["g"])
put("dml.m", dml.nuisance["m"])
put("aipw_ATE.e", ate.nuisance["e"])
put("t_learner.tau", learner.predict({k: new[k] for k in X}))
for column in ("estimate", "std_error", "ci_low", "ci_high", "ess", "variance_share", "truth",
               "error"):
    put(f"compare.{column}", table.column(column).to_numpy())
put("compare.converged", table.column("converged").to_numpy())

entropy = rfp.balance(data, "d", X, method="entropy")
put("entropy.weights", entropy.weights)
put("entropy.smd_after", entropy.balance.column("smd_after").to_numpy())
put("entropy.att", weighted_att(data["y"], data["d"], entropy.weights, np.array(data["g"]),
                                np.column_stack([data[c] for c in X])))
cluster = rfp.balance(data, "d", X, cluster="g", method="cluster", icc=0.2)
put("cluster.weights", cluster.weights)
put("cluster.smd_after", cluster.balance.column("smd_after").to_numpy())
hier = rfp.balance(data, "d_within", ["x1", "x2"], cluster="g", method="hierarchical", lam=0.5)
put("hierarchical.weights", hier.weights)

triad = rfp.simulate.tragic_triad(n_clusters=4, n_per_cluster=5, seed=2)
put("simulate.tragic_triad.y", triad.data.column("y").to_numpy())
put("simulate.tragic_triad.mu", triad.data.column("mu").to_numpy())
trial = rfp.simulate.cluster_trial(n_strata=2, clusters_per_stratum=3, n_per_cluster=4,
                                   effect="heterogeneous", seed=7)
put("simulate.cluster_trial.y", trial.data.column("y").to_numpy())
put("simulate.cluster_trial.truth", [trial.settings["truth"][k] for k in ("ATE", "ATT", "PLM")])

with open(sys.argv[3], "w", newline="") as out:
    w = csv.writer(out)
    w.writerow(["name", "index", "value"])
    w.writerows(rows)
