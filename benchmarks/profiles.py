"""Run profiles: rounds and durations of each load mode (smoke < quick < full).

What enters: a profile name. What leaves: a frozen :class:`Profile`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """Rounds, durations and sizes of one benchmark run.

    Every load mode runs in interleaved rounds: each round runs every scenario of the mode
    (at one rate, for the open loop) briefly, in a shuffled order, so the machine's drift and
    bursts land on all of them alike; a target's ratio is computed per round
    (``benchmarks.intervals``), the tables pool the rounds' histograms.
    """

    name: str
    sequential_rounds: int
    """Interleaved sequential rounds."""
    sequential_round_calls: int
    """Most measured sequential calls per scenario and round."""
    sequential_round_s: float
    """Most measured time per scenario and round: a 1 ms call gets many samples, a 7 ms call
    fewer, so the tails of the fast scenarios (whose ratios the targets compare) are not
    estimated from a handful of samples."""
    sequential_round_min_calls: int
    """...but a slow scenario's round goes on until it has this many calls (its p99 then rests
    on a few slow calls instead of the one slowest: Feast's ~5 ms calls gave 80 a round)..."""
    sequential_round_max_s: float
    """...up to this long."""
    sequential_warmup_calls: int
    """Discarded calls before the first round (later rounds discard a few to re-warm)."""
    closed_rounds: int
    """Interleaved closed-loop rounds."""
    closed_duration_s: float
    """Measured closed-loop time per scenario and round."""
    closed_warmup_s: float
    """Discarded closed-loop time before each measured one (the loops ramp up)."""
    closed_channels_per_worker: int
    """Distinct channels (TCP connections) per load-generator process."""
    closed_in_flight: int
    """Back-to-back loops per channel."""
    open_rounds: int
    """Interleaved open-loop rounds at each fixed rate for the open-loop target's pair
    (observation_cached and echo)..."""
    open_table_rounds: int
    """...of which the first ones also run every other networked scenario (no open-loop
    target: their rows are for the tables and the plot)."""
    open_rates_per_s: tuple[float, ...]
    """Fixed open-loop rates, calls/s, ascending: the agent's realistic rates (a few calls per
    second per agent, a fleet of agents: 50-500/s) and beyond. The same in every run, so runs
    compare; the open-loop targets are judged at these rates only."""
    open_target_rates_per_s: tuple[float, ...]
    """The fixed rates the open-loop target is judged at: up to about half of echo's
    closed-loop capacity on this machine (2,900-3,200 calls/s in the quick runs of
    2026-12-05), issue 4's limit; above it, the generator and both servers share two cores
    at saturation, and the ratio says more about the scheduler than about the server."""
    open_fractions: tuple[float, ...]
    """Then the capacity-relative rates: fractions of echo's closed-loop throughput in this
    run, one pass each, reported apart (they move with the machine: no target)."""
    open_round_s: float
    """Measured time per scenario, rate and round..."""
    open_round_min_calls: int
    """...longer at a low rate, until a round has this many calls..."""
    open_round_max_s: float
    """...but at most this long (a low rate's rounds then compare p95: ``report``)."""
    open_warmup_s: float
    """Discarded open-loop time before each measured one."""
    footprint_runs: int = 0
    """Starts of ``--workers 1`` in the footprint phase (0: none), one footprint target value
    each (``benchmarks.footprint``): 20 give the 6th smallest to the 6th largest as the 95%
    interval, 10 the 2nd smallest to the 2nd largest, 6 the smallest to the largest (one slow
    start decides). With 10, two quick runs gave start to SERVING 0.413 [0.342, 0.521] and
    0.352 [0.314, 0.377] against a bound of 0.5: the interval's ends are single starts."""
    footprint_calls: int = 5000
    """The footprint's burst, calls per start."""
    workers: int = 2
    """Load-generator processes for the closed loop (the open loop and sequential use one)."""
    seed: int = 21
    """Seed of the rounds' shuffled orders (a run's order is reproducible)."""
    server_instances: int = 4
    """Server processes per scenario of ours and of the echo floor; the rounds go through them
    (``benchmarks.runner._Run.pick_instances``)."""
    feast_instances: int = 2
    """The same for Feast's two servers (each takes seconds of CPU to start and ~250 MB)."""

    def sequential_round_s_for(self, call_s: float | None) -> float:
        """Most measured seconds of a sequential round for a scenario whose calls took
        ``call_s`` each in its last round (None: not measured yet)."""
        if call_s is None:
            return self.sequential_round_s
        wanted = self.sequential_round_min_calls * call_s
        return min(self.sequential_round_max_s, max(self.sequential_round_s, wanted))

    def open_round_duration_s(self, rate_per_s: float) -> float:
        """Measured seconds per scenario and round at ``rate_per_s``."""
        wanted = max(self.open_round_s, self.open_round_min_calls / rate_per_s)
        return min(self.open_round_max_s, wanted)

    def open_round_calls(self, rate_per_s: float) -> float:
        """Planned measured calls per scenario and round at ``rate_per_s``."""
        return rate_per_s * self.open_round_duration_s(rate_per_s)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        sequential_rounds=3,
        sequential_round_calls=20,
        sequential_round_s=0.3,
        sequential_round_min_calls=0,
        sequential_round_max_s=0.3,
        sequential_warmup_calls=10,
        closed_rounds=2,
        closed_duration_s=0.3,
        closed_warmup_s=0.1,
        closed_channels_per_worker=1,
        closed_in_flight=2,
        open_rounds=2,
        open_table_rounds=2,
        open_rates_per_s=(50.0,),
        open_target_rates_per_s=(50.0,),
        open_fractions=(0.2,),
        open_round_s=0.3,
        open_round_min_calls=0,
        open_round_max_s=0.3,
        open_warmup_s=0.1,
        server_instances=2,
        feast_instances=1,
    ),
    "quick": Profile(
        name="quick",
        sequential_rounds=20,
        sequential_round_calls=1000,
        sequential_round_s=0.4,
        sequential_round_min_calls=200,
        sequential_round_max_s=1.2,
        sequential_warmup_calls=100,
        closed_rounds=8,
        closed_duration_s=0.6,
        closed_warmup_s=0.2,
        closed_channels_per_worker=2,
        closed_in_flight=4,
        open_rounds=8,
        open_table_rounds=1,
        open_rates_per_s=(50.0, 200.0, 500.0, 1000.0, 2000.0),
        open_target_rates_per_s=(50.0, 200.0, 500.0, 1000.0),
        open_fractions=(0.25, 0.5, 0.75),
        open_round_s=1.0,
        open_round_min_calls=300,
        open_round_max_s=2.5,
        open_warmup_s=0.2,
        footprint_runs=20,
    ),
    "full": Profile(
        name="full",
        sequential_rounds=30,
        sequential_round_calls=5000,
        sequential_round_s=1.5,
        sequential_round_min_calls=500,
        sequential_round_max_s=3.0,
        sequential_warmup_calls=300,
        closed_rounds=10,
        closed_duration_s=4.0,
        closed_warmup_s=1.0,
        closed_channels_per_worker=2,
        closed_in_flight=8,
        open_rounds=10,
        open_table_rounds=10,
        open_rates_per_s=(50.0, 200.0, 500.0, 1000.0, 2000.0),
        open_target_rates_per_s=(50.0, 200.0, 500.0, 1000.0),
        open_fractions=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2),
        # 50/s: 10 rounds x 4 s = 2,000 calls per scenario for the pooled p99.
        open_round_s=3.0,
        open_round_min_calls=1000,
        open_round_max_s=4.0,
        open_warmup_s=1.0,
        footprint_runs=20,
    ),
}
