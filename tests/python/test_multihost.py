"""Several processes through jax.distributed (issue 11, item 5): the
documented example examples/two_process_fit.py, run as two processes of one
CPU device each on this machine, gives the single-process fit (float64)."""
import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

import rfp

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "two_process_fit.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_give_the_one_process_fit():
    address = f"localhost:{_free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}   # one device per process
    procs = [subprocess.Popen([sys.executable, str(EXAMPLE), str(i), "2", address],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    rng = np.random.default_rng(0)
    cluster = np.repeat(np.arange(10), 8)
    x = rng.normal(size=(80, 1))
    y = np.sin(x[:, 0]) + 0.1 * rng.normal(size=80)
    one = rfp.fit_arrays(x, y, cluster, hidden=(4,), max_steps=20, patience=None, progress=False)
    for o in outs:
        assert o["devices"] == 2
        np.testing.assert_allclose(o["train"], one.history.train, rtol=1e-10)
        np.testing.assert_allclose(o["prediction"], one.predict_arrays(x[:5]), rtol=1e-10)
