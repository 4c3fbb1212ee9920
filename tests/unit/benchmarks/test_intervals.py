"""The verdict's statistics: median of per-round ratios, its interval, the verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.intervals import (
    MISS,
    NOT_APPLICABLE,
    PASS,
    UNDECIDED,
    Estimate,
    format_estimate,
    interval_rank,
    median_interval,
    verdict,
)


def test_the_estimate_is_the_median_and_the_interval_contains_it() -> None:
    ratios = [1.02, 0.98, 1.05, 1.01, 0.99, 1.30, 1.00, 1.03, 0.97]
    estimate = median_interval(ratios)
    assert estimate is not None
    assert estimate.median == pytest.approx(1.01)
    assert estimate.rounds == 9
    assert estimate.low is not None and estimate.high is not None
    assert estimate.low <= estimate.median <= estimate.high
    # Nine rounds: the 2nd smallest and the 2nd largest ratio (98% coverage), so one outlier
    # round (1.30) does not drag the upper end out to it.
    assert (estimate.low, estimate.high) == (0.98, 1.05)
    assert estimate.coverage == pytest.approx(1 - 2 * 10 / 512)


@pytest.mark.parametrize(
    ("rounds", "rank", "coverage"),
    [
        (6, 1, 1 - 2 / 64),  # the fewest rounds with an interval: smallest to largest
        (8, 1, 1 - 2 / 256),
        (10, 2, 1 - 2 * 11 / 1024),
        (15, 4, 1 - 2 * 576 / 32768),
        (20, 6, 1 - 2 * 21700 / 1048576),
    ],
)
def test_the_ends_are_the_ranks_whose_binomial_tails_fit_in_5_percent(
    rounds: int, rank: int, coverage: float
) -> None:
    assert interval_rank(rounds) == (rank, pytest.approx(coverage))
    # One rank further in would cover less than 95%.
    below = sum(math.comb(rounds, k) for k in range(rank + 1)) / 2**rounds
    assert 1 - 2 * below < 0.95
    values = [float(v) for v in range(rounds, 0, -1)]  # order does not matter
    estimate = median_interval(values)
    assert estimate is not None
    assert (estimate.low, estimate.high) == (float(rank), float(rounds + 1 - rank))


def test_noisier_rounds_give_a_wider_interval() -> None:
    rng = np.random.default_rng(3)
    base = rng.standard_normal(15)
    quiet = median_interval(list(1.0 + 0.01 * base))
    noisy = median_interval(list(1.0 + 0.10 * base))
    assert quiet is not None and noisy is not None
    assert quiet.low is not None and quiet.high is not None
    assert noisy.low is not None and noisy.high is not None
    assert (noisy.high - noisy.low) > 5 * (quiet.high - quiet.low)


@pytest.mark.parametrize("rounds", [6, 8, 15, 20])
@pytest.mark.parametrize("spread", ["lognormal", "heavy_tail"])
def test_the_interval_covers_the_true_median_at_least_95_percent_of_the_time(
    rounds: int, spread: str
) -> None:
    # 2,000 runs drawn around a true median of 1.0, few rounds each, from a skewed and from a
    # heavy-tailed distribution (a round hit by a burst): the interval's coverage does not
    # depend on either. 2,000 runs estimate a coverage to about +-1%.
    rng = np.random.default_rng(11)
    covered = 0
    runs = 2000
    for _ in range(runs):
        if spread == "lognormal":
            values = rng.lognormal(0.0, 0.1, size=rounds)
        else:
            values = 1.0 + 0.05 * rng.standard_t(1, size=rounds)
        estimate = median_interval(list(values))
        assert estimate is not None and estimate.low is not None and estimate.high is not None
        covered += estimate.low <= 1.0 <= estimate.high
    assert covered / runs >= 0.935


def test_non_finite_rounds_are_dropped_and_too_few_give_no_interval() -> None:
    assert median_interval([]) is None
    assert median_interval([math.nan, math.inf]) is None
    two = median_interval([1.0, math.nan, 3.0])
    assert two == Estimate(2.0, None, None, 2)
    five = median_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert five == Estimate(3.0, None, None, 5)
    six = median_interval([6.0, 2.0, 3.0, 4.0, 5.0, 1.0])
    assert six == Estimate(3.5, 1.0, 6.0, 6, 1 - 2 / 64)


@pytest.mark.parametrize(
    ("low", "high", "at_most", "expected"),
    [
        (0.90, 1.05, True, PASS),  # wholly under a <= 1.10 bound
        (0.90, 1.10, True, PASS),  # touching the bound from the good side
        (1.11, 1.30, True, MISS),  # wholly over it
        (1.00, 1.20, True, UNDECIDED),  # the bound inside the interval
        (1.15, 1.30, False, PASS),  # >= 1.10: wholly over
        (0.80, 1.05, False, MISS),  # wholly under
        (1.05, 1.15, False, UNDECIDED),
    ],
)
def test_a_verdict_needs_the_whole_interval_on_one_side(
    low: float, high: float, at_most: bool, expected: str
) -> None:
    estimate = Estimate((low + high) / 2, low, high, 10)
    assert verdict(estimate, 1.10, at_most=at_most) == expected


def test_a_median_inside_the_bound_with_an_interval_across_it_is_undecided() -> None:
    # What a single ratio would have called a pass.
    estimate = Estimate(1.05, 0.95, 1.16, 10)
    assert verdict(estimate, 1.10, at_most=True) == UNDECIDED


def test_without_data_or_interval_there_is_no_pass_or_miss() -> None:
    assert verdict(None, 1.10, at_most=True) == NOT_APPLICABLE
    assert verdict(Estimate(0.5, None, None, 2), 1.10, at_most=True) == UNDECIDED


def test_the_estimate_prints_as_median_and_interval() -> None:
    assert format_estimate(Estimate(1.0321, 0.9812, 1.1043, 12)) == "1.032 [0.981, 1.104]"
    assert format_estimate(Estimate(1.0, None, None, 2)) == "1.000 [too few rounds: 2]"
    assert format_estimate(None) == "-"
