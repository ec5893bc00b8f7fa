"""JAX's persistent compilation cache, on by default.

The first fit in a process spends most of its time compiling; with the cache
on, a second R or Python process loads the compiled programs from disk
instead.  Directory: ``$RFP_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/rfp/jax``, else ``~/.cache/rfp/jax``.  ``RFP_CACHE_DIR=off``
(or empty) turns the cache off.  The minimum compile time and entry size are
set to zero so that rfp's small programs are cached too.

In memory, JAX keeps every program it has compiled in this process, and on
a CPU each one holds memory mappings (about 300 per fit of a new shape, 900
per tune).  A long R or Python session that fits many shapes would reach the
kernel's limit (``vm.max_map_count``, 65,530 by default), and the next
mapping fails inside XLA with a segfault.  ``release_if_crowded``, called at
the start of every fit and tune, drops the compiled programs once the
process holds more than ``CROWDED`` of that limit: later fits compile again
(from the persistent cache when it is on), and nothing else changes.
"""
from __future__ import annotations

import os
from pathlib import Path

import jax

OFF = ("", "off", "none", "false", "0")
CROWDED = 0.5   # share of vm.max_map_count at which compiled programs are dropped


def cache_dir() -> str | None:
    """The cache directory in use under the rules above (None: off)."""
    chosen = os.environ.get("RFP_CACHE_DIR")
    if chosen is not None:
        return None if chosen.strip().lower() in OFF else os.path.expanduser(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return os.path.join(base, "rfp", "jax")


def enable() -> str | None:
    """Point JAX's compilation cache at ``cache_dir()`` (unless off, or the
    user already chose a JAX cache directory).  Returns the directory."""
    path = cache_dir()
    if path is None or jax.config.jax_compilation_cache_dir:
        return None if path is None else jax.config.jax_compilation_cache_dir
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None   # read-only home: run without the cache
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def mapping_counts() -> tuple[int, int] | None:
    """(memory mappings this process holds, the kernel's limit), or None
    where /proc does not say (not Linux)."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
        with open("/proc/self/maps", "rb") as f:
            held = sum(1 for _ in f)
    except (OSError, ValueError):
        return None
    return held, limit


def release_if_crowded(share: float = CROWDED) -> bool:
    """Drop JAX's in-memory compiled programs (``jax.clear_caches``) when the
    process holds more than ``share`` of the kernel's memory-mapping limit.
    Returns whether it did."""
    counts = mapping_counts()
    if counts is None or counts[0] <= share * counts[1]:
        return False
    import gc
    jax.clear_caches()
    gc.collect()
    return True
