"""The verdict's statistics: median of per-round ratios, its bootstrap interval, the verdict."""

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
    bootstrap_median,
    format_estimate,
    verdict,
)


def test_the_estimate_is_the_median_and_the_interval_contains_it() -> None:
    ratios = [1.02, 0.98, 1.05, 1.01, 0.99, 1.30, 1.00, 1.03, 0.97]
    estimate = bootstrap_median(ratios)
    assert estimate is not None
    assert estimate.median == pytest.approx(1.01)
    assert estimate.rounds == 9
    assert estimate.low is not None and estimate.high is not None
    assert estimate.low <= estimate.median <= estimate.high
    # The interval of a median lies within the values, and one outlier round (1.30) does not
    # drag its upper end out to it.
    assert 0.97 <= estimate.low and estimate.high <= 1.05


def test_the_interval_is_reproducible_and_follows_the_seed() -> None:
    rng = np.random.default_rng(7)
    ratios = list(rng.lognormal(0.0, 0.1, size=12))
    first, again = bootstrap_median(ratios), bootstrap_median(ratios)
    assert first == again
    # Few resamples: the interval's ends then depend on which resamples were drawn.
    few = {bootstrap_median(ratios, resamples=20, seed=seed) for seed in range(5)}
    assert len(few) > 1


def test_noisier_rounds_give_a_wider_interval() -> None:
    rng = np.random.default_rng(3)
    base = rng.standard_normal(15)
    quiet = bootstrap_median(list(1.0 + 0.01 * base))
    noisy = bootstrap_median(list(1.0 + 0.10 * base))
    assert quiet is not None and noisy is not None
    assert quiet.low is not None and quiet.high is not None
    assert noisy.low is not None and noisy.high is not None
    assert (noisy.high - noisy.low) > 5 * (quiet.high - quiet.low)


def test_the_interval_covers_the_true_median_about_95_percent_of_the_time() -> None:
    # 200 runs of 15 rounds each, drawn around a true median of 1.0. The percentile bootstrap
    # of a median covers a little under its nominal 95% with so few rounds (about 88-92%
    # here); one that misses far more often would be broken.
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(200):
        estimate = bootstrap_median(list(rng.lognormal(0.0, 0.1, size=15)), resamples=2000)
        assert estimate is not None and estimate.low is not None and estimate.high is not None
        covered += estimate.low <= 1.0 <= estimate.high
    assert 0.85 <= covered / 200 <= 0.995


def test_non_finite_rounds_are_dropped_and_too_few_give_no_interval() -> None:
    assert bootstrap_median([]) is None
    assert bootstrap_median([math.nan, math.inf]) is None
    two = bootstrap_median([1.0, math.nan, 3.0])
    assert two == Estimate(2.0, None, None, 2)
    four = bootstrap_median([1.0, 2.0, 3.0, 4.0])
    assert four == Estimate(2.5, None, None, 4)
    five = bootstrap_median([1.0, 2.0, 3.0, 4.0, 5.0])
    assert five is not None and five.low is not None


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
