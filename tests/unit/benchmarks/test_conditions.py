"""A run's machine conditions: echo's and Feast's levels from the rounds, stolen CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.compare import verdicts
from benchmarks.conditions import conditions, describe, read_cpu_times, steal_pct


def _round(scenario: str, p50: float, p99: float, mode: str = "sequential") -> dict[str, Any]:
    return {"scenario": scenario, "mode": mode, "p50": p50, "p99": p99}


def test_conditions_are_medians_of_the_sequential_rounds() -> None:
    rounds = [
        _round("echo", 0.30, 0.90),
        _round("echo", 0.40, 1.00),
        _round("echo", 0.35, 0.70),
        _round("echo", 9.0, 9.0, mode="open"),  # another mode: not the floor's level
        _round("feast_listen", 3.0, 6.0),
        _round("feast_listen", 4.0, 7.0),
        _round("observation_cached", 0.5, 5.0),
    ]
    found = conditions(rounds, [100, 0, 50, 800, 0, 0, 0, 50], [200, 0, 100, 1600, 0, 0, 0, 100])
    assert found == {
        "echo_p50_ms": 0.35,
        "echo_p99_ms": 0.9,
        "echo_tail": 2.57,
        "feast_p50_ms": 3.5,
        "steal_pct": 5.0,  # 50 of 1000 ticks
    }
    line = describe(found)
    assert line == (
        "echo p50 0.35 ms, p99 0.9 ms (tail x2.57), feast_listen p50 3.5 ms, steal 5.0%"
    )


def test_missing_figures_read_as_dashes() -> None:
    found = conditions([], None, None)
    assert set(found.values()) == {None}
    assert describe(found) == "echo p50 -, p99 - (tail x-), feast_listen p50 -, steal -"
    assert describe(None) == describe(found)
    assert steal_pct([1, 2, 3], [4, 5, 6]) is None  # too few fields for steal
    assert steal_pct([0] * 8, [0] * 8) is None  # no time passed


def test_read_cpu_times_parses_the_cpu_line(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  10 1 5 100 2 0 3 4 0 0\ncpu0 5 0 2 50 1 0 1 2 0 0\n")
    assert read_cpu_times(stat) == [10, 1, 5, 100, 2, 0, 3, 4, 0, 0]
    stat.write_text("intr 1 2 3\n")
    assert read_cpu_times(stat) is None
    assert read_cpu_times(tmp_path / "absent") is None


def test_verdicts_show_each_runs_conditions() -> None:
    records = [
        {
            "run": {"timestamp": stamp, "conditions": {"echo_p99_ms": p99}},
            "targets": [{"target": "t", "bound": "<= 1", "verdict": "pass", "rounds": 8}],
        }
        for stamp, p99 in (("A", 0.8), ("B", 1.1))
    ]
    text, same = verdicts(records)
    assert same
    row = next(line for line in text.splitlines() if line.startswith("| machine conditions"))
    assert "p99 0.8 ms" in row
    assert "p99 1.1 ms" in row
