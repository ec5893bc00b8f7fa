"""Several devices through JAX's SPMD (``devices`` setting).

The clusters of every bucket are split across a one-axis device mesh
(``jax.sharding``), the parameters, optimiser state and hyperparameters are
replicated; the compiled step is the same program, partitioned by XLA, whose
sums over clusters become all-reduces.  Each bucket's cluster axis is padded
to a multiple of the device count with empty clusters (mask and weight 0),
which add nothing to R_k or its gradient.  Several processes (hosts) join
through ``jax.distributed.initialize`` before ``import rfp``; ``jax.devices()``
then lists every host's devices.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "clusters"


def choose(devices) -> list | None:
    """The devices to use: None (one device, no mesh), an int n (the first n
    of ``jax.devices()``) or "all"."""
    if devices is None:
        return None
    available = jax.devices()
    if devices == "all":
        return available if len(available) > 1 else None
    if (isinstance(devices, bool) or not isinstance(devices, (int, float, np.integer, np.floating))
            or not float(devices).is_integer() or devices < 1):
        raise ValueError(f"devices must be None, a whole number >= 1 or 'all', got {devices!r}")
    devices = int(devices)             # R passes whole numbers as doubles
    if devices > len(available):
        raise ValueError(f"devices = {devices} but JAX sees {len(available)} device(s) "
                         f"({available[0].platform}); lower devices or use 'all'")
    return available[:devices] if devices > 1 else None


def mesh(devices: list) -> Mesh:
    return Mesh(np.array(devices), (AXIS,))


def shard_buckets(buckets: list[dict], m: Mesh) -> list[dict]:
    """Each bucket's arrays split along their cluster axis across the mesh,
    after padding that axis with empty clusters to a multiple of its size."""
    n = m.devices.size
    split = NamedSharding(m, PartitionSpec(AXIS))
    out = []
    for b in buckets:
        extra = -len(b["mask"]) % n

        def pad(a):
            a = np.asarray(a)
            return np.concatenate([a, np.zeros((extra,) + a.shape[1:], a.dtype)]) if extra else a
        out.append(jax.tree.map(lambda a: jax.device_put(pad(a), split), b))
    return out


def replicate(tree, m: Mesh):
    """A pytree copied onto every device of the mesh."""
    return jax.device_put(tree, NamedSharding(m, PartitionSpec()))
