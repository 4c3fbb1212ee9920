"""``python -m benchmarks load`` against a real ObservationService on port 0 (real redis-server,
real server in a thread, as the client tests use): counts, error codes, the JSON shape, and a
server stall that shows in the percentiles because calls are timed from their scheduled send.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.load.command import LoadError, LoadSettings, run_load
from devstack.embedded_redis import EmbeddedRedis, free_port
from tests.integration.client import conftest as client_fixtures
from tests.integration.client.conftest import (
    ServerThread,
    client_server_config,
    write_store_observation,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
raw_data_dir = client_fixtures.raw_data_dir
"""The client tests' raw market data (for the server's fallback), shared as a fixture."""


@pytest.fixture
def server(redis_server: EmbeddedRedis, raw_data_dir: Path) -> Iterator[ServerThread]:
    write_store_observation(redis_server)
    config = client_server_config(redis_server, raw_data_dir)
    thread = ServerThread(config).start()
    yield thread
    thread.stop()


def _slow(histogram: object, threshold_ms: float) -> int:
    return sum(
        item.count_added_in_this_iter_step
        for item in histogram.get_recorded_iterator()  # type: ignore[attr-defined]
        if item.value_iterated_to >= threshold_ms * 1000
    )


def test_counts_and_percentiles_of_a_clean_run(server: ServerThread) -> None:
    settings = LoadSettings(server.target, rate_per_s=100, duration_s=1.0, concurrency=2)
    report = asyncio.run(run_load(settings))
    data = report.to_dict()
    assert data["calls"] == 100 and data["ok"] == 100 and data["errors"] == 0
    assert data["errors_by_code"] == {}
    assert data["latency_ms"]["count"] == 100
    assert 0 < data["latency_ms"]["p50"] <= data["latency_ms"]["p99"] <= data["latency_ms"]["max"]
    assert data["send_lag_ms"]["count"] == 100


def test_errors_are_counted_by_status_code(server: ServerThread) -> None:
    settings = LoadSettings(
        server.target, rate_per_s=90, duration_s=1.0, symbols=("USDCOP", "EURUSD", "bad!")
    )
    report = asyncio.run(run_load(settings))
    assert report.errors_by_code == {"NOT_FOUND": 30, "INVALID_ARGUMENT": 30}
    assert report.measurement.calls == 90 and report.measurement.errors == 60
    assert report.measurement.histogram.get_total_count() == 30
    assert "EURUSD" in report.error_examples["NOT_FOUND"]


def test_a_stalled_server_shows_in_the_percentiles(server: ServerThread) -> None:
    settings = LoadSettings(server.target, rate_per_s=50, duration_s=1.5)
    stall = threading.Timer(0.5, server.stall, args=(0.2,))
    stall.start()
    try:
        report = asyncio.run(run_load(settings))
    finally:
        stall.cancel()
    histogram = report.measurement.histogram
    assert report.measurement.calls == 75 and report.measurement.errors == 0
    # The call scheduled as the stall began waited ~200 ms; those scheduled 20, 40, ... ms into
    # it waited ~180, 160, ... ms: every one of them is in the histogram.
    assert histogram.get_value_at_percentile(99.0) >= 150_000
    assert _slow(histogram, 60.0) >= 5
    assert histogram.get_value_at_percentile(50.0) < 60_000


def test_the_command_prints_json_and_progress(server: ServerThread) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "load", "--target", server.target,
         "--rate", "40", "--duration", "1", "--symbol", "USDCOP", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {
        "target", "offered_rate_per_s", "duration_s", "concurrency", "symbols", "calls", "ok",
        "errors", "errors_by_code", "achieved_rate_per_s", "elapsed_s", "latency_ms",
        "send_lag_ms", "error_examples",
    }  # fmt: skip
    assert data["calls"] == 40 and data["ok"] == 40 and data["symbols"] == ["USDCOP"]
    assert set(data["latency_ms"]) == {"count", "p50", "p90", "p99", "p99_9", "max", "mean"}
    assert "sent 40  ok 40  errors 0" in result.stderr


def test_an_unreachable_target_fails_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "load", "--target", f"127.0.0.1:{free_port()}",
         "--rate", "10", "--duration", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        result.stderr.strip()
    ] and result.stderr.startswith("load: cannot connect to 127.0.0.1:")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(LoadError, match="--rate"):
        LoadSettings("127.0.0.1:1", rate_per_s=0, duration_s=1)
    with pytest.raises(LoadError, match="HOST:PORT"):
        LoadSettings("localhost", rate_per_s=1, duration_s=1)
