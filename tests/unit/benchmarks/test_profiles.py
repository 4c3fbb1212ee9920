"""Open-loop rates: the realistic fixed rates first, then the stress fractions of echo's
saturation, ascending and without repeats."""

from __future__ import annotations

import dataclasses

from benchmarks.profiles import PROFILES
from benchmarks.runner import open_rates


def test_quick_profile_runs_realistic_rates_before_stress_rates() -> None:
    rates = open_rates(PROFILES["quick"], echo_saturation=2000.0)
    assert rates == [50.0, 200.0, 500.0, 1000.0, 1500.0]


def test_a_stress_rate_equal_to_a_fixed_rate_runs_once() -> None:
    profile = dataclasses.replace(PROFILES["quick"], open_fractions=(0.25, 0.5))
    assert open_rates(profile, echo_saturation=800.0) == [50.0, 200.0, 400.0, 500.0]


def test_every_profile_bounds_each_rate_duration() -> None:
    for profile in PROFILES.values():
        assert profile.open_rates_per_s == tuple(sorted(profile.open_rates_per_s))
        assert profile.open_max_duration_s >= profile.open_duration_s
