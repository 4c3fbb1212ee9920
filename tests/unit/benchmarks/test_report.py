"""Targets are per-round ratios within one run: a median, an interval, a verdict that needs the
whole interval on one side of the bound."""

from __future__ import annotations

import math
from typing import Any

import pytest

from benchmarks.report import (
    evaluate_targets,
    metrics_cost_note,
    open_loop_percentile,
    per_round_ratios,
    render_markdown,
)

ROUNDS = 8


def _row(
    scenario: str, mode: str, p99: float, rate: float = 1000.0, offered: float | None = None
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "kind": "observation",
        "mode": mode,
        "offered_rate": offered,
        "achieved_rate": rate,
        "calls": 100,
        "errors": 0,
        "count": 100,
        "p50": p99 / 2,
        "p90": p99 * 0.8,
        "p95": p99 * 0.9,
        "p99": p99,
        "p99_9": p99 * 1.1,
        "max": p99 * 2,
        "mean": p99 / 2,
    }


def _rounds(
    scenario: str,
    mode: str,
    p99s: list[float],
    *,
    offered: float | None = None,
    rates: list[float] | None = None,
    saturated: bool = False,
) -> list[dict[str, Any]]:
    out = []
    for index, p99 in enumerate(p99s):
        row = _row(scenario, mode, p99, rate=(rates or [1000.0] * len(p99s))[index])
        row["offered_rate"] = offered
        row["round"] = index
        row["saturated"] = saturated
        out.append(row)
    return out


def _steady(scenario: str, mode: str, p99: float, **kwargs: Any) -> list[dict[str, Any]]:
    # A little spread, so the interval is not a point: p99 x (0.99 .. 1.01).
    spread = [1.0 + 0.01 * ((i % 3) - 1) for i in range(ROUNDS)]
    return _rounds(scenario, mode, [p99 * s for s in spread], **kwargs)


# echo drifts round to round (x1 .. x2): the ratios, taken within each round, do not.
DRIFT = [1.0, 2.0, 1.2, 1.8, 1.1, 1.5, 1.3, 1.9]
ROUND_ROWS = [
    *_rounds("echo", "sequential", DRIFT),
    *_rounds("observation_cached", "sequential", [1.05 * d for d in DRIFT]),
    *_rounds("observation_redis", "sequential", [1.6 * d for d in DRIFT]),
    # fallback: 1.0 .. 1.4 x echo, across its 1.20 bound
    *_rounds(
        "observation_fallback",
        "sequential",
        [r * d for r, d in zip([1.0, 1.4, 1.05, 1.35, 1.1, 1.3, 1.15, 1.25], DRIFT, strict=True)],
    ),
    *_rounds("feast_listen", "sequential", [8.0 * d for d in DRIFT]),
    *_rounds("feast_serve", "sequential", [10.0 * d for d in DRIFT]),
    *_rounds("echo", "closed", [5.0] * ROUNDS, rates=[2000.0] * ROUNDS),
    *_rounds("observation_cached", "closed", [5.0] * ROUNDS, rates=[1700.0] * ROUNDS),
    *_steady("echo", "open", 2.0, offered=200.0),
    *_steady("observation_cached", "open", 2.1, offered=200.0),
    *_steady("echo", "open", 3.0, offered=1000.0),
    *_steady("observation_cached", "open", 9.0, offered=1000.0, saturated=True),
]
OPEN = {200.0: "p95", 1000.0: "p99"}


def _verdicts(rounds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["target"]: t for t in evaluate_targets(rounds, OPEN)}


def test_each_ratio_is_taken_within_a_round() -> None:
    ratios = per_round_ratios(
        ROUND_ROWS, "observation_cached", "echo", mode="sequential", key="p99"
    )
    assert ratios == pytest.approx([1.05] * ROUNDS)  # echo's drift cancels in every round


def test_a_round_missing_one_side_has_no_ratio() -> None:
    rows = [r for r in ROUND_ROWS if not (r["scenario"] == "echo" and r["round"] == 3)]
    ratios = per_round_ratios(rows, "observation_cached", "echo", mode="sequential", key="p99")
    assert len(ratios) == ROUNDS - 1


def test_verdicts_pass_miss_and_undecided() -> None:
    verdicts = _verdicts(ROUND_ROWS)
    cached = verdicts["observation_cached p99 / echo p99"]
    assert math.isclose(cached["median"], 1.05) and cached["verdict"] == "pass"
    assert cached["low"] <= 1.05 <= cached["high"] and cached["rounds"] == ROUNDS
    redis = verdicts["observation_redis p99 / echo p99"]
    assert math.isclose(redis["median"], 1.6) and redis["verdict"] == "miss"
    fallback = verdicts["observation_fallback p99 / echo p99"]
    assert fallback["low"] < 1.20 < fallback["high"]
    assert fallback["verdict"] == "undecided"
    assert verdicts["observation_redis p99 / feast_listen p99"]["verdict"] == "pass"
    throughput = verdicts["observation_cached max throughput / echo max throughput"]
    assert math.isclose(throughput["median"], 0.85) and throughput["verdict"] == "miss"


def test_open_loop_targets_sit_on_the_target_rates_with_their_percentile() -> None:
    verdicts = _verdicts(ROUND_ROWS)
    low = verdicts["observation_cached p95 / echo p95 at 200/s"]
    assert low["verdict"] == "pass" and low["metric"] == "p95"
    assert math.isclose(low["median"], 2.1 / 2.0)
    assert "p99" in low["why"]
    high = verdicts["observation_cached p99 / echo p99 at 1000/s"]
    assert high["verdict"] == "miss" and math.isclose(high["median"], 3.0)
    assert high["why"] == "observation_cached saturated in 8 of 8 rounds"
    assert open_loop_percentile(999) == "p95" and open_loop_percentile(1000) == "p99"
    # a fixed rate without a target (not in open_percentiles) gets no row
    assert not any("at 500/s" in label for label in verdicts)


def test_a_saturated_round_counts_like_any_other() -> None:
    echo = _steady("echo", "open", 3.0, offered=1000.0)
    echo[2] = {**echo[2], "p99": 300.0, "saturated": True}  # one round the floor fell behind
    rows = [*echo, *_steady("observation_cached", "open", 3.0, offered=1000.0)]
    (target,) = evaluate_targets(rows, {1000.0: "p99"})[-1:]
    assert len(target["ratios"]) == ROUNDS and min(target["ratios"]) < 0.02
    assert target["verdict"] == "pass" and math.isclose(target["median"], 1.0, rel_tol=0.02)
    assert target["why"] == "echo saturated in 1 of 8 rounds"


def test_a_missing_scenario_is_not_applicable_not_a_pass() -> None:
    rows = [r for r in ROUND_ROWS if r["scenario"] != "feast_serve"]
    verdict = _verdicts(rows)["observation_redis p99 / feast_serve p99"]
    assert verdict["verdict"] == "n/a" and verdict["median"] is None


def test_feast_targets_report_the_echo_floor_of_the_same_rounds() -> None:
    verdicts = _verdicts(ROUND_ROWS)
    floor = verdicts["observation_redis p99 / feast_listen p99"]["floor"]
    assert math.isclose(floor["median"], 1.0 / 8.0) and floor["rounds"] == ROUNDS
    assert "floor" not in verdicts["observation_cached p99 / echo p99"]


def test_metrics_cost_compares_the_twin_servers_round_by_round() -> None:
    rows = [
        *_rounds("observation_cached", "sequential", [1.08 * d for d in DRIFT]),
        *_rounds("observation_cached_metrics_off", "sequential", DRIFT),
    ]
    (cost,) = [t for t in evaluate_targets(rows, {}) if t["target"].startswith("metrics cost")]
    assert math.isclose(cost["median"], 1.08) and cost["verdict"] == "miss"
    assert "floor" not in cost
    pooled = [
        _row("echo", "sequential", 1.0),
        _row("observation_cached", "sequential", 1.08),
        _row("observation_cached_metrics_off", "sequential", 1.0),
    ]
    note = metrics_cost_note(pooled)
    assert "1.080 with metrics on, 1.000 with metrics off; on / off = 1.080" in note


def test_served_log_cost_compares_its_twin_round_by_round() -> None:
    rows = [
        *_rounds("observation_cached", "sequential", [1.02 * d for d in DRIFT]),
        *_rounds("observation_cached_log_off", "sequential", DRIFT),
    ]
    (cost,) = [t for t in evaluate_targets(rows, {}) if t["target"].startswith("served-log cost")]
    assert math.isclose(cost["median"], 1.02) and cost["verdict"] == "pass"
    assert "floor" not in cost


def test_markdown_has_every_mode_and_the_targets_with_their_intervals() -> None:
    pooled = [
        _row("echo", "sequential", 1.0),
        _row("echo", "closed", 5.0),
        {**_row("echo", "open", 2.0, offered=200.0), "rate_kind": "fixed"},
        {**_row("echo", "open", 4.0, offered=3000.0), "rate_kind": "relative"},
    ]
    record = {
        "run": {
            "timestamp": "20240101T000000Z",
            "profile": "quick",
            "git_sha": "abc",
            "git_dirty": False,
            "cpu_count": 2,
            "python": "3.11",
            "packages": {"grpcio": "1", "feast": "0.67"},
            "closed_loop_connections": 4,
            "closed_loop_in_flight": 4,
        },
        "measurements": pooled,
        "targets": evaluate_targets(ROUND_ROWS, OPEN),
    }
    text = render_markdown(record)
    for heading in (
        "## Sequential",
        "## Closed loop",
        "## Open loop, fixed rates",
        "## Open loop, capacity-relative rates",
        "## Targets",
    ):
        assert heading in text
    redis = next(
        line for line in text.splitlines() if line.startswith("| observation_redis p99 / echo")
    )
    assert "| sequential | 1.600 [1.600, 1.600] | 8 | <= 1.50 | miss |" in redis
    relative = text.split("## Open loop, capacity-relative rates")[1].split("## Targets")[0]
    assert "3,000" in relative and "| 200 |" not in relative
