"""A target's verdict from per-round ratios: their median, a 95% interval, a verdict.

What enters: the ratios of one target, one per interleaved round (our figure / the floor's
figure measured in the same round), and the target's bound. What leaves: an
:class:`Estimate` (median, interval, rounds, the interval's coverage) and a verdict: ``pass``
when the whole interval is inside the bound, ``miss`` when the whole interval is outside it,
``undecided`` when the bound lies inside the interval (the run cannot tell; a bound placed
inside the machine's noise stays undecided instead of flipping between runs), ``n/a`` without
data.

Why per round: one ratio of two p99s taken minutes apart moves with whatever else the
machine did in those minutes. Both figures of a round's ratio come from the same few seconds,
so slow drift cancels within the ratio, and the spread of the ratios over rounds shows the
noise that remains. The median is the statistic (a round hit by a burst moves it little).

Its interval is the distribution-free one of a median: two of the sorted ratios, the k-th
smallest and the k-th largest, with k the largest rank such that the true median falls
outside them with probability at most 2.5% on each side. That probability is a binomial tail
(each round lands below the true median with probability 1/2, whatever the ratios'
distribution), so the coverage is exact and at least 95% for any number of rounds, where a
percentile bootstrap of a median covers less with few rounds (about 90% with 15) and missed
often enough to flip verdicts between two runs of one commit. It needs no resampling and no
seed: the same ratios always give the same interval. It holds when the rounds are independent
draws of the same conditions; the runner makes them so as far as a run can (each round starts
fresh server processes, rounds are spread over the run: ``benchmarks.runner``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
"""Least coverage of the reported interval."""
MIN_ROUNDS = 6
"""The fewest rounds whose widest interval (smallest to largest ratio) covers 95%: with 5,
the true median lies outside all five with probability 2/32 = 6.25%."""

PASS = "pass"
MISS = "miss"
UNDECIDED = "undecided"
NOT_APPLICABLE = "n/a"
VERDICTS = (PASS, MISS, UNDECIDED, NOT_APPLICABLE)


@dataclass(frozen=True)
class Estimate:
    """The median of per-round ratios and its interval (None: too few rounds)."""

    median: float
    low: float | None
    high: float | None
    rounds: int
    coverage: float | None = None
    """The interval's exact coverage (at least ``CONFIDENCE``); None without an interval or
    for an estimate read back from an older results file."""


def interval_rank(rounds: int, confidence: float = CONFIDENCE) -> tuple[int, float] | None:
    """The rank k (1-based) of the interval's ends among ``rounds`` sorted values, and its
    coverage; None when even the smallest-to-largest interval covers less than ``confidence``.

    The true median lies below the k-th smallest value when fewer than k values fall below it:
    P(Binomial(rounds, 1/2) <= k - 1), the same above; k is the largest rank whose two tails
    together stay within 1 - ``confidence``.
    """
    tail_limit = (1.0 - confidence) / 2.0
    tail, rank = 0.0, 0
    for below in range(rounds):
        p = math.comb(rounds, below) / 2.0**rounds
        if tail + p > tail_limit:
            break
        tail += p
        rank = below + 1
    if rank == 0:
        return None
    return rank, 1.0 - 2.0 * tail


def median_interval(values: Sequence[float], *, confidence: float = CONFIDENCE) -> Estimate | None:
    """Median of ``values`` and its distribution-free interval; None without finite values.

    Non-finite values (a round without a figure) are dropped first.
    """
    finite = sorted(v for v in values if math.isfinite(v))
    if not finite:
        return None
    n = len(finite)
    middle = n // 2
    median = finite[middle] if n % 2 else (finite[middle - 1] + finite[middle]) / 2.0
    ranked = interval_rank(n, confidence)
    if ranked is None:
        return Estimate(median, None, None, n)
    rank, coverage = ranked
    return Estimate(median, finite[rank - 1], finite[n - rank], n, coverage)


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
