"""How noisy the machine was during a run, in figures a reader can compare across runs.

What enters: the run's round summaries and two readings of ``/proc/stat`` (at its start and
end). What leaves: a small dict (``run.conditions`` in results.json) and one line of text.

Why: every verdict is a ratio measured within one run, and its interval covers the noise of
that run's rounds, not a level that lasts the whole run. Two quick runs of one commit had
Feast's sequential p50 at 2.5 ms and at 3.8 ms, and echo's p99 at 0.73-0.79 ms and
0.88-1.04 ms; the targets near their bounds changed verdict between them. These figures put
that level next to the verdicts (``python -m benchmarks verdicts`` shows them per run), so a
run whose floor was slow or whose tails were long says so.

- ``echo_p50_ms`` / ``echo_p99_ms``: the gRPC floor's sequential p50 and p99, medians over its
  rounds; ``echo_tail``: their ratio (how long the machine's tail was).
- ``feast_p50_ms``: ``feast_listen``'s sequential p50, median over its rounds (the Feast-relative
  targets divide by Feast's figures, which move more with the machine than ours do).
- ``steal_pct``: the share of CPU time the hypervisor gave to other guests during the run.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

PROC_STAT = Path("/proc/stat")
_STEAL_FIELD = 7
"""Index of ``steal`` among the ``cpu`` line's numbers (user nice system idle iowait irq softirq
steal ...)."""


def read_cpu_times(path: Path = PROC_STAT) -> list[int] | None:
    """The aggregate ``cpu`` line of ``/proc/stat`` as numbers; None where there is none."""
    try:
        first = path.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not first or first[0] != "cpu":
        return None
    return [int(value) for value in first[1:]]


def steal_pct(before: list[int] | None, after: list[int] | None) -> float | None:
    """Stolen CPU time between two readings, in percent of all CPU time; None if unknown."""
    if before is None or after is None or len(before) <= _STEAL_FIELD:
        return None
    deltas = [b - a for a, b in zip(before, after, strict=False)]
    # guest times (fields 8, 9) are already counted in user and nice
    total = sum(deltas[: _STEAL_FIELD + 1])
    if total <= 0:
        return None
    return round(100.0 * deltas[_STEAL_FIELD] / total, 2)


def _median_of(rounds: list[dict[str, Any]], scenario: str, key: str) -> float | None:
    values = [
        float(r[key])
        for r in rounds
        if r.get("scenario") == scenario and r.get("mode") == "sequential" and r.get(key)
    ]
    return round(statistics.median(values), 3) if values else None


def conditions(
    rounds: list[dict[str, Any]], before: list[int] | None, after: list[int] | None
) -> dict[str, float | None]:
    """The run's noise figures (see the module's docstring)."""
    p50 = _median_of(rounds, "echo", "p50")
    p99 = _median_of(rounds, "echo", "p99")
    return {
        "echo_p50_ms": p50,
        "echo_p99_ms": p99,
        "echo_tail": round(p99 / p50, 2) if p50 and p99 else None,
        "feast_p50_ms": _median_of(rounds, "feast_listen", "p50"),
        "steal_pct": steal_pct(before, after),
    }


def describe(found: dict[str, Any] | None) -> str:
    """One line: the figures of :func:`conditions`, ``-`` for one not measured."""
    found = found or {}

    def shown(key: str, unit: str = "") -> str:
        value = found.get(key)
        return "-" if value is None else f"{value}{unit}"

    return (
        f"echo p50 {shown('echo_p50_ms', ' ms')}, p99 {shown('echo_p99_ms', ' ms')} "
        f"(tail x{shown('echo_tail')}), feast_listen p50 {shown('feast_p50_ms', ' ms')}, "
        f"steal {shown('steal_pct', '%')}"
    )
