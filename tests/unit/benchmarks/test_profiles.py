"""Open-loop rates: fixed ones in the profile (the same in every run, the targets' rates), then
capacity-relative ones derived from this run's echo throughput; round durations bounded."""

from __future__ import annotations

import dataclasses

from benchmarks.profiles import PROFILES
from benchmarks.runner import open_percentiles, relative_rates, sequential_blocks


def test_fixed_rates_do_not_depend_on_the_run() -> None:
    for name in ("quick", "full"):
        assert PROFILES[name].open_rates_per_s == (50.0, 200.0, 500.0, 1000.0, 2000.0)


def test_relative_rates_are_fractions_of_echo_throughput_without_repeats() -> None:
    assert relative_rates(PROFILES["quick"], echo_saturation=4000.0) == [1000.0, 2000.0, 3000.0]
    profile = dataclasses.replace(PROFILES["quick"], open_fractions=(0.5, 0.25, 0.5))
    assert relative_rates(profile, echo_saturation=800.0) == [200.0, 400.0]


def test_every_profile_runs_interleaved_rounds_and_bounds_each_round() -> None:
    for profile in PROFILES.values():
        assert profile.open_rates_per_s == tuple(sorted(profile.open_rates_per_s))
        assert profile.open_round_max_s >= profile.open_round_s
        for rate in profile.open_rates_per_s:
            assert profile.open_round_duration_s(rate) <= profile.open_round_max_s
        assert min(profile.sequential_rounds, profile.closed_rounds, profile.open_rounds) >= 2
    for name in ("quick", "full"):
        assert PROFILES[name].sequential_rounds >= 10


def test_the_full_profile_pools_2000_calls_at_its_lowest_rate() -> None:
    full = PROFILES["full"]
    lowest = full.open_rates_per_s[0]
    assert full.open_rounds * full.open_round_calls(lowest) >= 2000


def test_short_rounds_compare_p95_and_long_ones_p99() -> None:
    quick = open_percentiles(PROFILES["quick"])
    assert quick[50.0] == "p95"  # 2.5 s x 50/s = 125 calls per round
    assert quick[1000.0] == "p99"  # 1 s x 1,000/s


def test_open_loop_targets_sit_on_fixed_rates_up_to_half_of_echo_capacity() -> None:
    for profile in PROFILES.values():
        assert set(profile.open_target_rates_per_s) <= set(profile.open_rates_per_s)
        assert set(open_percentiles(profile)) == set(profile.open_target_rates_per_s)
    # echo's closed-loop capacity here: ~3,000 calls/s; issue 4 judges up to half of it
    assert max(PROFILES["quick"].open_target_rates_per_s) == 1000.0
    assert 2000.0 in PROFILES["quick"].open_rates_per_s


def test_sequential_rounds_split_into_blocks_that_cover_every_round_once() -> None:
    assert sequential_blocks(20, 3) == [range(0, 7), range(7, 14), range(14, 20)]
    assert sequential_blocks(3, 3) == [range(0, 1), range(1, 2), range(2, 3)]
    assert sequential_blocks(2, 3) == [range(0, 1), range(1, 2), range(2, 2)]
