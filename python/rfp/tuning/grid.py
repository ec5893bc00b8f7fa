"""The tuning grid: its default, its expansion into configurations, and
each configuration's name and complexity rank (simplest first)."""
from __future__ import annotations

import itertools

import numpy as np

from rfp import settings as settings_mod

# alpha, eta and the learning rate are traced: one program serves every value.
TRACED = ("alpha", "inner_lr", "learning_rate")
# settings that change the compiled program: a separate batch per combination.
STATIC = ("model", "hidden", "activation", "inner_steps", "first_order", "penalty",
          "width", "steps", "head", "embedding_dim")

# ERM (alpha = 1), MAML (alpha = 0) and their midpoint, so the table itself
# says whether the regularisation helps on the user's data; with the linear
# candidates solved at the same (alpha, eta) and the constant: 7 candidates.
# Three network configurations (not the nine of earlier versions) because each
# costs a network per fold: bench/RESULTS.md ("default tune") measures the time.
DEFAULT_GRID = {
    "alpha": [1.0, 0.5, 0.0],
    "inner_lr": [0.1],
}


def expand_grid(grid, base: dict) -> list[dict]:
    """The grid (a dict of candidate lists, or a list of such dicts) as a list
    of full configurations, without duplicates.  With alpha = 1 the inner loop
    has no weight, so eta and k are irrelevant and set to base values."""
    if grid is None:
        grid = DEFAULT_GRID
    if isinstance(grid, dict):
        grid = [grid]
    if not isinstance(grid, (list, tuple)) or not grid:
        raise TypeError("grid must be a dict of candidate lists (e.g. {'alpha': [1, 0.5, 0]}) "
                        "or a list of such dicts")
    configs, seen = [], set()
    for part in grid:
        if not isinstance(part, dict):
            raise TypeError(f"each grid part must be a dict of candidate lists, got {type(part).__name__}")
        unknown = set(part) - set(TRACED) - set(STATIC)
        if unknown:
            raise ValueError(f"grid setting(s) {sorted(unknown)} cannot be tuned; tunable: "
                             f"{sorted(TRACED + STATIC)}")
        keys = list(part)
        values = []
        for k in keys:
            v = part[k]
            if isinstance(v, (str, int, float)) or (k == "hidden" and v and
                                                    all(isinstance(h, (int, np.integer)) for h in v)):
                raise TypeError(f"grid['{k}'] must be a list of candidates, e.g. "
                                f"{{'{k}': [{v!r}]}}")
            try:
                v = list(v)
            except TypeError:
                raise TypeError(f"grid['{k}'] must be a list of candidates, e.g. "
                                f"{{'{k}': [{v!r}]}}") from None
            if len(v) == 0:
                raise ValueError(f"grid['{k}'] is empty: give at least one candidate")
            values.append([_candidate(k, c) for c in v])
        for combo in itertools.product(*values):
            c = {**base, **dict(zip(keys, combo))}
            if "hidden" in c and c["hidden"] is not None:
                c["hidden"] = tuple(int(h) for h in c["hidden"])
            if float(c["alpha"]) == 1.0:   # no inner loop: k = 0 is the same R_1, cheaper
                c["inner_lr"], c["inner_steps"] = base["inner_lr"], 0
            key = tuple(sorted((k, _hashable(v)) for k, v in c.items()))
            if key not in seen:
                seen.add(key)
                configs.append(c)
    return configs


def _candidate(key, value):
    """One candidate of grid[key], checked by the settings' validator (the
    rule of ``key``); the message names the grid entry."""
    if key == "hidden" and value is None:
        return None
    try:
        return settings_mod.check(key, value)
    except (TypeError, ValueError) as e:
        msg = str(e)
        if msg.startswith(f"{key} must be "):
            msg = f"grid['{key}']: each candidate must be " + msg[len(f"{key} must be "):]
        else:
            msg = f"grid['{key}']: {msg}"
        raise type(e)(msg) from None


def _hashable(v):
    """A grid value as a dictionary key (lists and arrays, e.g. case weights, as tuples)."""
    return tuple(np.asarray(v).tolist()) if isinstance(v, (list, np.ndarray)) else v


def complexity(config: dict) -> int:
    """Rank from simple to flexible (``selection``): 0 the constant, 1 the
    linear model at alpha = 1, 2 the linear model with inner steps, 3 a bag
    of words (``bag_of_words``: linear in word frequencies), 4 the network
    at alpha = 1 (ERM), 5 the network with inner steps."""
    if config.get("model") == "constant":
        return 0
    if config.get("model") == "words":
        return 3
    erm = float(config["alpha"]) == 1.0
    if config.get("model") == "linear":
        return 1 if erm else 2
    return 4 if erm else 5


def candidate_name(config: dict) -> str:
    """A short label: "mean", "linear", "linear alpha=0.5 eta=0.1", "mlp alpha=1"."""
    model = config.get("model")
    if model == "constant":
        return "mean"
    if model == "words":
        return f"words ridge={float(config['ridge']):g}"
    name = model if isinstance(model, str) else "user"
    if float(config["alpha"]) == 1.0:
        return name if name == "linear" else f"{name} alpha=1"
    return f"{name} alpha={float(config['alpha']):g} eta={float(config['inner_lr']):g}"


def _static_key(c):
    return tuple((k, _hashable(c.get(k))) for k in STATIC)
