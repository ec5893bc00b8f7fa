"""Progress bars: the rule shared with the R package, and one bar over the
many fits of an effect or a comparison.

The rule (R: ``R/backend-progress.R``): a bar when the session is interactive (a
Python prompt, IPython or Jupyter) or stderr is a terminal; ``progress=True``
/ ``False`` forces it. Bars go to stderr (tqdm, with the elapsed and
remaining time), never to stdout, so they are not captured into rendered
documents; the R package gives the backend its own bar as a callback.

Cross-fitting makes folds x nuisances x repeats fits; a bar per fit would
scroll past, so the estimators show one bar that advances by a fit. Each fit
reports ``progress(step, total, train_loss, validation_loss)`` as it trains
(``train.train``); a step that does not exceed the last one means a new fit
has started.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager


class FitCounter:
    """The per-step callback given to every fit: counts finished fits on a bar."""

    def __init__(self, bar):
        self.bar = bar
        self.last_step = None

    def __call__(self, step, total, train_loss=None, validation_loss=None):
        if self.last_step is not None and step <= self.last_step:
            self.bar.update(1)          # the previous fit has finished
        self.last_step = step

    def finish(self):
        """Count the last fit (and any that reported no step) as done."""
        remaining = (self.bar.total - self.bar.n) if self.bar.total is not None else 1
        if self.last_step is not None and remaining > 0:
            self.bar.update(remaining)


def interactive_session() -> bool:
    """A Python prompt (``python`` / ``python -i``), or an IPython / Jupyter shell."""
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return True
    ipython = sys.modules.get("IPython")
    return ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None


def wants_bar(progress) -> bool:
    """A bar for ``progress`` None (the session is interactive or stderr is a
    terminal), True or False."""
    if progress is None:
        stderr = sys.stderr
        terminal = stderr is not None and hasattr(stderr, "isatty") and stderr.isatty()
        return bool(terminal or interactive_session())
    if isinstance(progress, str) or progress not in (True, False):
        raise ValueError(f"progress must be None, True, False or a callable, got {progress!r}")
    return bool(progress)


@contextmanager
def over_fits(settings: dict, total: int | None, desc: str = "rfp fits"):
    """Fit settings whose ``progress`` drives one bar over ``total`` fits.

    ``settings["progress"]``: None (default: a bar when stderr is a terminal),
    True / False (always / never), or a callable, which is passed through to
    every fit unchanged (the R package gives its own).
    """
    progress = settings.get("progress")
    if callable(progress):
        yield dict(settings)
        return
    if not wants_bar(progress):
        yield {**settings, "progress": False}
        return
    from tqdm.auto import tqdm
    counter = FitCounter(tqdm(total=total, desc=desc, unit="fit", leave=False, file=sys.stderr))
    try:
        yield {**settings, "progress": counter}
        counter.finish()
    finally:
        counter.bar.close()
