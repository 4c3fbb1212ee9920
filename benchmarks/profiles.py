"""Run profiles: how long each load mode runs (smoke < quick < full).

What enters: a profile name. What leaves: a frozen :class:`Profile`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """Durations and sizes of one benchmark run."""

    name: str
    sequential_rounds: int
    """Sequential calls are split into rounds interleaved across scenarios, then pooled."""
    sequential_calls: int
    """Most measured sequential calls per scenario (all rounds together)."""
    sequential_round_s: float
    """Most measured time per scenario and round: a 1 ms call gets many samples, a 7 ms call
    fewer, so the tails of the fast scenarios (whose ratios the targets compare) are not
    estimated from a handful of samples."""
    sequential_warmup_calls: int
    """Discarded calls before the first round (later rounds discard a few to re-warm)."""
    closed_duration_s: float
    """Measured closed-loop time per scenario."""
    closed_warmup_s: float
    closed_channels_per_worker: int
    """Distinct channels (TCP connections) per load-generator process."""
    closed_in_flight: int
    """Back-to-back loops per channel."""
    open_rates_per_s: tuple[float, ...]
    """Fixed open-loop rates, calls/s, run first: the agent's realistic rates (a few calls per
    second per agent, a fleet of agents: 50-500/s), where production lives."""
    open_fractions: tuple[float, ...]
    """Then the stress rates: fractions of echo's closed-loop throughput, stepped up in order."""
    open_duration_s: float
    """Measured time per open-loop rate."""
    open_min_samples: int
    """A rate runs at least this many measured calls (longer than open_duration_s if needed)..."""
    open_max_duration_s: float
    """...but at most this long (a low rate then has fewer samples: its p99 is coarser)."""
    open_warmup_s: float
    workers: int = 2
    """Load-generator processes for the closed loop (the open loop and sequential use one)."""


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        sequential_rounds=1,
        sequential_calls=60,
        sequential_round_s=0.5,
        sequential_warmup_calls=10,
        closed_duration_s=0.4,
        closed_warmup_s=0.1,
        closed_channels_per_worker=1,
        closed_in_flight=2,
        open_rates_per_s=(50.0,),
        open_fractions=(0.2,),
        open_duration_s=0.4,
        open_min_samples=0,
        open_max_duration_s=0.4,
        open_warmup_s=0.1,
    ),
    "quick": Profile(
        name="quick",
        sequential_rounds=10,
        sequential_calls=8000,
        sequential_round_s=0.6,
        sequential_warmup_calls=100,
        closed_duration_s=2.5,
        closed_warmup_s=0.5,
        closed_channels_per_worker=2,
        closed_in_flight=4,
        open_rates_per_s=(50.0, 200.0, 500.0),
        open_fractions=(0.25, 0.5, 0.75),
        open_duration_s=1.5,
        open_min_samples=1500,
        open_max_duration_s=8.0,
        open_warmup_s=0.5,
    ),
    "full": Profile(
        name="full",
        sequential_rounds=20,
        sequential_calls=40_000,
        sequential_round_s=3.0,
        sequential_warmup_calls=300,
        closed_duration_s=10.0,
        closed_warmup_s=2.0,
        closed_channels_per_worker=2,
        closed_in_flight=8,
        open_rates_per_s=(50.0, 200.0, 500.0),
        open_fractions=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2),
        open_duration_s=10.0,
        open_min_samples=5_000,
        open_max_duration_s=30.0,
        open_warmup_s=2.0,
    ),
}
