"""One rfp fit across several processes (hosts), through JAX's own SPMD.

Every process runs this same script with its own process id; JAX connects
them through the coordinator (process 0's address), ``jax.devices()`` then
lists the devices of every process, and ``devices="all"`` splits the clusters
across all of them (parameters replicated, sums over clusters all-reduced).
Each process must pass the same data; each gets the same fitted model.

On one machine, two processes of one CPU device each:

    python examples/two_process_fit.py 0 2 localhost:12355 &
    python examples/two_process_fit.py 1 2 localhost:12355

On a cluster of GPU machines, use the first machine's address and one
process per machine (or per GPU).
"""
import json
import sys

import jax

process_id, n_processes, coordinator = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
# CPU devices of different processes talk through gloo (no effect on GPUs);
# nothing may touch JAX's devices before initialize()
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=coordinator, num_processes=n_processes,
                           process_id=process_id)

import numpy as np  # noqa: E402

import rfp  # noqa: E402  (after initialize, so that rfp sees every process's devices)

rng = np.random.default_rng(0)                  # the same data in every process
cluster = np.repeat(np.arange(10), 8)
x = rng.normal(size=(80, 1))
y = np.sin(x[:, 0]) + 0.1 * rng.normal(size=80)
model = rfp.fit_arrays(x, y, cluster, hidden=(4,), max_steps=20, patience=None,
                       progress=False, devices="all")
print(json.dumps({"process": process_id, "devices": len(jax.devices()),
                  "train": model.history.train,
                  "prediction": model.predict_arrays(x[:5]).tolist()}), flush=True)
