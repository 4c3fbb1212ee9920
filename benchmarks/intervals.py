"""A target's verdict from per-round ratios: their median, a bootstrap 95% interval, a verdict.

What enters: the ratios of one target, one per interleaved round (our figure / the floor's
figure measured in the same round), and the target's bound. What leaves: an
:class:`Estimate` (median, interval, rounds) and a verdict: ``pass`` when the whole interval
is inside the bound, ``miss`` when the whole interval is outside it, ``undecided`` when the
bound lies inside the interval (the run cannot tell; a bound placed inside the machine's noise
stays undecided instead of flipping between runs), ``n/a`` without data.

Why per round: one ratio of two p99s taken minutes apart moves with whatever else the
machine did in those minutes. Both figures of a round's ratio come from the same few seconds,
so slow drift cancels within the ratio, and the spread of the ratios over rounds shows the
noise that remains. The median is the statistic (a round hit by a burst moves it little);
its interval comes from resampling the rounds with replacement (percentile bootstrap, fixed
seed: the same ratios always give the same interval).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
"""Coverage of the reported interval."""
RESAMPLES = 10_000
"""Bootstrap resamples of the rounds."""
SEED = 21
"""Fixed: an interval is a function of the ratios, not of the moment it was computed."""
MIN_ROUNDS = 5
"""Fewer ratios than this give no interval: the bootstrap median of 3 values can only be one of
them, so its "interval" would be two of the values, not an estimate of anything."""

PASS = "pass"
MISS = "miss"
UNDECIDED = "undecided"
NOT_APPLICABLE = "n/a"
VERDICTS = (PASS, MISS, UNDECIDED, NOT_APPLICABLE)


@dataclass(frozen=True)
class Estimate:
    """The median of per-round ratios and its bootstrap interval (None: too few rounds)."""

    median: float
    low: float | None
    high: float | None
    rounds: int


def bootstrap_median(
    values: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Estimate | None:
    """Median of ``values`` and its percentile-bootstrap interval; None without finite values.

    Non-finite values (a round without a figure) are dropped first.
    """
    finite = np.array([v for v in values if math.isfinite(v)], dtype=float)
    if finite.size == 0:
        return None
    median = float(np.median(finite))
    if finite.size < MIN_ROUNDS:
        return Estimate(median, None, None, int(finite.size))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, finite.size, size=(resamples, finite.size))
    medians = np.median(finite[picks], axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(medians, [tail, 1.0 - tail])
    return Estimate(median, float(low), float(high), int(finite.size))


def verdict(estimate: Estimate | None, bound: float, *, at_most: bool) -> str:
    """``pass`` / ``miss`` only when the whole interval is on one side of ``bound``.

    ``at_most``: the target is ``ratio <= bound`` (latency); otherwise ``ratio >= bound``
    (throughput). An interval that touches the bound from the good side passes.
    """
    if estimate is None:
        return NOT_APPLICABLE
    if estimate.low is None or estimate.high is None:
        return UNDECIDED
    # In "lower is better" terms: the interval's best and worst ends against the bound.
    best, worst = (estimate.low, estimate.high) if at_most else (estimate.high, estimate.low)
    if _inside(worst, bound, at_most=at_most):
        return PASS
    if not _inside(best, bound, at_most=at_most):
        return MISS
    return UNDECIDED


def _inside(value: float, bound: float, *, at_most: bool) -> bool:
    return value <= bound if at_most else value >= bound


def format_estimate(estimate: Estimate | None) -> str:
    """``1.032 [0.981, 1.104]`` (median [95% interval]); ``-`` without data."""
    if estimate is None:
        return "-"
    if estimate.low is None or estimate.high is None:
        return f"{estimate.median:.3f} [too few rounds: {estimate.rounds}]"
    return f"{estimate.median:.3f} [{estimate.low:.3f}, {estimate.high:.3f}]"
