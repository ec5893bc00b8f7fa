"""JAX's persistent compilation cache, on by default.

The first fit in a process spends most of its time compiling; with the cache
on, a second R or Python process loads the compiled programs from disk
instead.  Directory: ``$RFP_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/rfp/jax``, else ``~/.cache/rfp/jax``.  ``RFP_CACHE_DIR=off``
(or empty) turns the cache off.  The minimum compile time and entry size are
set to zero so that rfp's small programs are cached too.
"""
from __future__ import annotations

import os
from pathlib import Path

import jax

OFF = ("", "off", "none", "false", "0")


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
