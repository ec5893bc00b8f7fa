"""What every runner in validation/ shares: seeds from the command line, and
rows appended to a CSV that a rerun resumes from (the (design, seed) pairs
already in the file are skipped, so the seeds written before a run are the
ones it completes)."""
from __future__ import annotations

import csv
import os


def seeds_arg(text: str) -> list[int]:
    """'7000-7039' or '1,2,5-9' as a list of seeds."""
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b) + 1) if b else [int(a)])
    return out


def run(out: str, seeds: list[int], designs: list[str], one_sample, report=print) -> None:
    """Seed by seed across the designs, ``one_sample(design, seed)`` (a list
    of row dicts) appended to ``out`` and flushed; ``report(design, seed,
    rows)`` after each."""
    new = not os.path.exists(out)
    done = set()
    if not new:
        with open(out) as f:
            done = {(r["design"], int(r["seed"])) for r in csv.DictReader(f)}
    with open(out, "a", newline="") as f:
        writer = None
        for seed in seeds:
            for name in designs:
                if (name, seed) in done:
                    continue
                rows = one_sample(name, seed)
                if writer is None:
                    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                    if new:
                        writer.writeheader()
                writer.writerows(rows)
                f.flush()
                report(name, seed, rows)
