"""Writes frozen model files with the rfp on PYTHONPATH (an old commit)."""
import json, subprocess, sys
import numpy as np
import pyarrow as pa
import rfp

out, tag, tuned = sys.argv[1], sys.argv[2], sys.argv[3] == "tuned"
rng = np.random.default_rng(20)
g = np.repeat(np.arange(6), 10)
x1, x2 = rng.normal(size=(2, g.size))
y = 1.0 + np.sin(x1) - 0.5 * x2 + 0.3 * rng.normal(size=g.size)
d = (rng.random(g.size) < 1 / (1 + np.exp(-x1))).astype(float)
labels = np.array([f"school{c}" for c in g])
t = pa.table({"y": y, "d": d, "x1": x1 * 100.0, "x2": x2, "g": labels})
new_x1, new_x2 = rng.normal(size=(2, 7))
new = pa.table({"x1": new_x1 * 100.0, "x2": new_x2})
common = dict(patience=None, progress=False)
models = {}
if tuned:
    models["tuned"] = rfp.tune(t, y="y", x=["x1", "x2"], cluster="g",
                               grid={"alpha": [1.0, 0.5], "hidden": [(3,), (4,)]}, folds=2, simple=False,
                               max_steps=20, **common)
else:
    models["mlp"] = rfp.fit(t, y="y", x=["x1", "x2"], cluster="g", hidden=(4,), alpha=0.5,
                            inner_steps=1, max_steps=30, **common)
    models["logistic"] = rfp.fit(t, y="d", x=["x1", "x2"], cluster="g", model="linear",
                                 loss="logistic", max_steps=30, **common)
expected = {"new_x1": new_x1 * 100.0, "new_x2": new_x2}
for name, m in models.items():
    m.save(f"{out}/{tag}_{name}.rfp")
    expected[f"{name}_predict"] = m.predict(new, as_numpy=True)
    expected[f"{name}_cluster_labels"] = np.asarray(m.cluster_labels).astype(str)
np.savez(f"{out}/{tag}_expected.npz", **expected)
print(tag, list(models), json.loads(str(np.load(f"{out}/{tag}_{name}.rfp")["meta"]))["format"])
