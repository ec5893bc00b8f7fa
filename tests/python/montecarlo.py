"""Acceptance bands for the Monte Carlo coverage studies (marked ``slow``).

A study of R independent replications counts the intervals that cover the
truth: the count is Binomial(R, c) for the interval's true coverage c.  The
band [lo, hi] around the nominal level c0 is derived from that law, exactly
(scipy's binomial, not the normal approximation):

* lo is the smallest k / R such that a true coverage of c0 - 0.03 (three
  points below nominal) reaches it with probability at most 1%:
  P(Binomial(R, c0 - 0.03) >= k) <= 0.01;
* hi = c0 + (c0 - lo): over-coverage by as much fails too;
* R must be large enough that the nominal coverage itself falls outside
  [lo, hi] with probability at most 1%; ``coverage_band`` refuses a
  smaller R, so every study states a test with both error rates <= 1%.

In the normal approximation, lo = c0 - 0.03 + 2.33 sqrt((c0 - 0.03)(0.97 - c0) / R)
and the nominal level fails with probability about
2 Phi(-(c0 - lo) / sqrt(c0 (1 - c0) / R)).  For c0 = 0.95: R = 2000 gives
lo = 0.935 (SE 0.0061 at 0.92, 0.0049 at 0.95; nominal fails with
probability 0.003); R = 4000 gives lo = 0.930 (nominal fails with
probability < 1e-6).  A study whose estimator truly covers a little below
nominal (e.g. 0.935 at 40 clusters) needs the larger R to pass reliably.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

SHORTFALL = 0.03   # a true coverage this far below nominal must fail ...
POWER = 0.99       # ... with this probability at least
LEVEL = 0.01       # and the nominal coverage may fail with this probability at most


def coverage_band(nominal: float, reps: int) -> tuple[float, float]:
    """[lo, hi]: the observed coverage a study of ``reps`` replications must
    reach (see the module's docstring)."""
    bad = nominal - SHORTFALL
    k = np.arange(reps + 1)
    passes_bad = stats.binom.sf(k - 1, reps, bad)           # P(count >= k)
    lo_count = int(k[np.argmax(passes_bad <= 1 - POWER)])
    lo = lo_count / reps
    hi = nominal + (nominal - lo)
    hi_count = int(np.floor(hi * reps + 1e-9))
    fails_nominal = (stats.binom.cdf(lo_count - 1, reps, nominal)
                     + stats.binom.sf(hi_count, reps, nominal))
    if fails_nominal > LEVEL:
        raise ValueError(f"{reps} replications are too few: the nominal coverage {nominal} "
                         f"would fail with probability {fails_nominal:.3f}")
    return lo, hi


def assert_covers(covered, nominal: float, what: str = "coverage") -> float:
    """The share of ``covered`` (one bool per replication) lies in
    ``coverage_band(nominal, len(covered))``; returns the share."""
    covered = np.asarray(covered, dtype=bool)
    lo, hi = coverage_band(nominal, covered.size)
    share = float(covered.mean())
    print(f"\n{what}: {share:.4f} in {covered.size} replications (band [{lo:.4f}, {hi:.4f}])")
    assert lo <= share <= hi, (f"{what} {share:.4f} outside [{lo:.4f}, {hi:.4f}] "
                               f"({covered.size} replications, nominal {nominal})")
    return share
