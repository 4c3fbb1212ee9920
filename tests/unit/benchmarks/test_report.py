"""Targets are ratios computed within one run, with the right direction and rows."""

from __future__ import annotations

import math
from typing import Any

from benchmarks.report import evaluate_targets, metrics_cost_note, render_markdown


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
        "p99": p99,
        "p99_9": p99 * 1.1,
        "max": p99 * 2,
        "mean": p99 / 2,
    }


ROWS = [
    _row("echo", "sequential", 1.0),
    _row("observation_cached", "sequential", 1.05),
    _row("observation_redis", "sequential", 1.6),
    _row("observation_fallback", "sequential", 1.1),
    _row("feast_listen", "sequential", 8.0),
    _row("feast_serve", "sequential", 10.0),
    _row("echo", "closed", 5.0, rate=2000.0),
    _row("observation_cached", "closed", 5.0, rate=1700.0),
    _row("echo", "open", 2.0, offered=200.0),
    _row("observation_cached", "open", 2.1, offered=200.0),
    _row("echo", "open", 3.0, offered=1500.0),
    _row("observation_cached", "open", 9.0, offered=1500.0),
]


def test_targets_are_ratios_with_pass_and_miss() -> None:
    verdicts = {t["target"]: t for t in evaluate_targets(ROWS, echo_saturation=2000.0)}
    cached = verdicts["observation_cached p99 / echo p99"]
    assert math.isclose(cached["value"], 1.05) and cached["verdict"] == "pass"
    redis = verdicts["observation_redis p99 / echo p99"]
    assert math.isclose(redis["value"], 1.6) and redis["verdict"] == "MISS"
    assert verdicts["observation_redis p99 / feast_listen p99"]["verdict"] == "pass"  # 0.2
    assert verdicts["observation_redis p99 / feast_serve p99"]["verdict"] == "pass"  # 0.16
    throughput = verdicts["observation_cached max throughput / echo max throughput"]
    assert math.isclose(throughput["value"], 0.85) and throughput["verdict"] == "MISS"
    # open loop: only rates up to half of echo's saturation (1000/s) are judged
    assert verdicts["observation_cached p99 / echo p99 at 200/s"]["verdict"] == "pass"
    assert not any("1500/s" in name for name in verdicts)


def test_a_missing_scenario_is_not_applicable_not_a_pass() -> None:
    rows = [r for r in ROWS if r["scenario"] != "feast_serve"]
    verdicts = {t["target"]: t for t in evaluate_targets(rows, echo_saturation=2000.0)}
    assert verdicts["observation_redis p99 / feast_serve p99"]["verdict"] == "n/a"


def test_markdown_has_every_mode_and_the_targets() -> None:
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
        "measurements": ROWS,
        "targets": evaluate_targets(ROWS, echo_saturation=2000.0),
    }
    text = render_markdown(record)
    for heading in ("## Sequential", "## Closed loop", "## Open loop", "## Targets"):
        assert heading in text
    assert "| observation_redis p99 / echo p99 | sequential | 1.600 | <= 1.50 | MISS |" in text


def test_feast_targets_report_the_echo_floor_of_the_same_run() -> None:
    verdicts = {t["target"]: t for t in evaluate_targets(ROWS, echo_saturation=2000.0)}
    listen = verdicts["observation_redis p99 / feast_listen p99"]
    echo_p99 = next(r["p99"] for r in ROWS if r["scenario"] == "echo" and r["mode"] == "sequential")
    listen_p99 = next(
        r["p99"] for r in ROWS if r["scenario"] == "feast_listen" and r["mode"] == "sequential"
    )
    assert math.isclose(listen["floor"], echo_p99 / listen_p99)
    assert "floor" not in verdicts["observation_cached p99 / echo p99"]


def test_metrics_cost_compares_the_twin_servers_of_one_run() -> None:

    rows = [
        _row("echo", "sequential", 1.0),
        _row("observation_cached", "sequential", 1.08),
        _row("observation_cached_metrics_off", "sequential", 1.0),
    ]
    (cost,) = [t for t in evaluate_targets(rows, None) if t["target"].startswith("metrics cost")]
    assert math.isclose(cost["value"], 1.08)
    assert cost["verdict"] == "MISS"
    assert "floor" not in cost
    note = metrics_cost_note(rows)
    assert "1.080 with metrics on, 1.000 with metrics off; on / off = 1.080" in note
