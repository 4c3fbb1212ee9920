"""Smoke: `python -m benchmarks run --profile smoke` runs every scenario in every load mode.

About a second of load per scenario; most of the time is start-up (the pipeline, six server
processes, Feast's imports). Nothing is skipped: a server that does not start, or a scenario
whose first answer is wrong, fails the run with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(280)]

REPO_ROOT = Path(__file__).resolve().parents[3]
ALL_SCENARIOS = {
    "echo",
    "observation_cached",
    "observation_invalidated",
    "observation_cached_metrics_off",
    "observation_cached_log_off",
    "observation_redis",
    "observation_batch",
    "observation_fallback",
    "redis_read",
    "feast_sdk",
    "feast_listen",
    "feast_serve",
}
NETWORKED = ALL_SCENARIOS - {"redis_read", "feast_sdk"}


def test_smoke_profile_runs_every_scenario(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "run",
            "--profile",
            "smoke",
            "--results-dir",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=260,
        check=False,
    )
    assert completed.returncode == 0, f"benchmark failed:\n{completed.stderr[-4000:]}"
    (run_dir,) = tmp_path.iterdir()
    record = json.loads((run_dir / "results.json").read_text())
    rows = record["measurements"]

    def scenarios(mode: str) -> set[str]:
        return {r["scenario"] for r in rows if r["mode"] == mode and r["count"] > 0}

    assert scenarios("sequential") == ALL_SCENARIOS
    assert scenarios("closed") == NETWORKED
    assert scenarios("open") == NETWORKED
    assert all(r["errors"] == 0 for r in rows if r["mode"] == "sequential"), rows
    for row in rows:
        assert row["p50"] <= row["p99"] <= row["max"]
    # the answers measured were the right ones
    assert record["probes"]["observation_redis"]["sources"] == ["VALUE_SOURCE_ONLINE_STORE"] * 3
    assert (
        record["probes"]["observation_fallback"]["sources"] == ["VALUE_SOURCE_COMPUTE_FALLBACK"] * 3
    )
    assert {p["n_values"] for p in record["probes"].values()} == {15}
    run = record["run"]
    assert run["cpu_count"] and run["packages"]["feast"] and run["git_sha"]
    assert {t["verdict"] for t in record["targets"]} <= {"pass", "miss", "undecided", "n/a"}
    assert len(record["targets"]) >= 7
    # every target is judged on per-round ratios of interleaved rounds (smoke: 3 sequential)
    cached = next(
        t for t in record["targets"] if t["target"] == "observation_cached p99 / echo p99"
    )
    assert len(cached["ratios"]) == 3 and cached["median"] > 0
    rounds = {(r["scenario"], r["mode"], r["round"]) for r in record["rounds"]}
    assert {("echo", "sequential", i) for i in range(3)} <= rounds
    assert {("echo", "open", i) for i in range(2)} <= rounds

    # The rounds go through several processes of each of our servers and of the echo floor
    # (smoke: 2), one of each Feast server; each round's summary names the pid that served it.
    def pids(scenario: str, mode: str) -> set[int]:
        return {
            r["server_pid"]
            for r in record["rounds"]
            if r["scenario"] == scenario and r["mode"] == mode
        }

    for scenario in ("echo", "observation_redis", "observation_fallback"):
        assert len(pids(scenario, "sequential")) == 2, scenario
    assert len(pids("observation_cached", "closed")) == 2
    assert len(pids("echo", "open")) == 2
    assert len(pids("feast_listen", "sequential")) == 1
    assert pids("redis_read", "sequential") == {None}
    assert run["server_instances"]["echo"] == 2 and run["server_instances"]["feast_serve"] == 1
    kinds = {r.get("rate_kind") for r in rows if r["mode"] == "open"}
    assert kinds == {"fixed", "relative"}
    assert any(t["target"].startswith("metrics cost") for t in record["targets"])
    assert any(note.startswith("/metrics of observation_cached:") for note in record["notes"])
    # the machine's conditions during the run, from its own rounds
    conditions = run["conditions"]
    assert 0 < conditions["echo_p50_ms"] <= conditions["echo_p99_ms"], conditions
    assert conditions["feast_p50_ms"] > conditions["echo_p50_ms"], conditions
    markdown = (run_dir / "results.md").read_text()
    assert "## Targets" in markdown and "observation_cached" in markdown
    assert "Machine conditions: echo p50 " in markdown
    assert markdown in completed.stdout
    assert (run_dir / "p99_vs_rate.png").stat().st_size > 1000
