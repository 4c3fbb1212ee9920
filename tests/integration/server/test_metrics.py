"""The server's /metrics against a real redis-server, a real server and real calls: every
metric the issue names, with the values the calls must have produced; ``--workers 2``
counts add up across processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from usdcop.observation.v1 import observation_pb2 as pb

from devstack.embedded_redis import EmbeddedRedis, free_port
from server.metrics import CATALOG
from tests.integration.server.conftest import (
    redis_client,
    running,
    server_config,
    write_observation,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SERVICE = "usdcop.observation.v1.ObservationService"
VIEWS = ("technical_features", "macro_features", "state_features")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> tuple[str, Samples]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def grpc_labels(method: str, **more: str) -> dict[str, str]:
    return {"grpc_service": SERVICE, "grpc_method": method, "grpc_type": "unary", **more}


async def wait_for(predicate, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def test_every_metric_after_real_calls(fresh_redis: EmbeddedRedis, data_dir: Path) -> None:
    write_observation(redis_client(fresh_redis))  # every view's event time: now - 60 s
    metrics_port = free_port()
    config = server_config(fresh_redis.port, data_dir, metrics_port=metrics_port)

    async def scenario() -> None:
        async with running(config) as app:
            assert app.server.metrics_url == f"http://127.0.0.1:{metrics_port}/metrics"
            for _ in range(5):  # one load, then four cache hits (the manual clock stands still)
                await app.get()
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await app.get("usdcop")
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            await app.stub.DescribeObservation(pb.DescribeObservationRequest(), timeout=10)
            url = app.server.metrics_url
            await wait_for(
                lambda: ("usdcop_redis_used_memory_bytes", frozenset()) in scrape(url)[1]
            )
            text, samples = await asyncio.to_thread(scrape, url)

        for spec in CATALOG:  # every declared metric is exported, with samples
            assert f"\n# TYPE {spec.name} {spec.kind}\n" in text, spec.name
            assert any(name.startswith(spec.name) for name, _ in samples), spec.name

        get = grpc_labels("GetObservation")
        assert value(samples, "grpc_server_started_total", **get) == 6
        assert value(samples, "grpc_server_handled_total", **get, grpc_code="OK") == 5
        assert value(samples, "grpc_server_handled_total", **get, grpc_code="INVALID_ARGUMENT") == 1
        assert value(samples, "grpc_server_handling_seconds_count", **get) == 6
        assert value(samples, "grpc_server_handling_seconds_bucket", **get, le="+Inf") == 6
        assert 0 < value(samples, "grpc_server_handling_seconds_sum", **get) < 6
        describe = grpc_labels("DescribeObservation", grpc_code="OK")
        assert value(samples, "grpc_server_handled_total", **describe) == 1

        for view in VIEWS:
            common = {"symbol": "USDCOP", "view": view, "source": "online_store", "reason": "none"}
            answers = "usdcop_view_answers_total"
            assert value(samples, answers, **common, from_cache="false") == 1
            assert value(samples, answers, **common, from_cache="true") == 4
            assert value(samples, "usdcop_view_age_seconds", symbol="USDCOP", view=view) == 60
            fallback_age = value(
                samples, "usdcop_fallback_data_age_seconds", symbol="USDCOP", view=view
            )
            assert fallback_age == 30 * 60  # the raw bars end 30 min before the clock's now
        cache = "usdcop_cache_requests_total"
        assert value(samples, cache, symbol="USDCOP", result="hit") == 4
        assert value(samples, cache, symbol="USDCOP", result="miss") == 1
        assert value(samples, "usdcop_redis_read_seconds_count") == 1
        assert value(samples, "usdcop_redis_read_failures_total", kind="error") == 0
        assert value(samples, "usdcop_circuit_breaker_state", state="closed") == 1
        assert value(samples, "usdcop_circuit_breaker_state", state="open") == 0
        assert value(samples, "usdcop_redis_used_memory_bytes") > 100_000
        assert value(samples, "usdcop_redis_maxmemory_bytes") == 0  # embedded: no limit
        assert value(samples, "usdcop_redis_memory_sample_success") == 1
        assert value(samples, "usdcop_cache_tracking_up") == 1  # push invalidation is on
        assert value(samples, "usdcop_cache_tracking_lost_total") == 0

    asyncio.run(scenario())


def test_store_down_shows_fallback_reasons_breaker_and_failures(
    closed_port: int, data_dir: Path
) -> None:
    config = server_config(
        closed_port, data_dir, metrics_port=free_port(), cache_ttl_ms=0.0, breaker_open_ms=60_000
    )

    async def scenario() -> None:
        async with running(config) as app:
            for _ in range(5):
                observation = await app.get()
                assert {v.source for v in observation.views} == {pb.VALUE_SOURCE_COMPUTE_FALLBACK}
            app.clock.advance(2.0)
            assert app.server.metrics_url is not None
            _, samples = await asyncio.to_thread(scrape, app.server.metrics_url)

        for view in VIEWS:
            fallback = {"symbol": "USDCOP", "view": view, "source": "fallback"}
            assert (
                value(
                    samples,
                    "usdcop_view_answers_total",
                    **fallback,
                    reason="store_unavailable",
                    from_cache="false",
                )
                == 5
            )
            # The served view is the fallback's: its age is the fallback data's age.
            age = value(samples, "usdcop_view_age_seconds", symbol="USDCOP", view=view)
            assert age == 30 * 60 + 2
        assert value(samples, "usdcop_redis_read_failures_total", kind="error") == 3  # threshold
        assert value(samples, "usdcop_circuit_breaker_state", state="open") == 1
        assert value(samples, "usdcop_circuit_breaker_transitions_total", state="open") == 1
        assert value(samples, "usdcop_redis_memory_sample_success") == 0
        assert not [name for name, _ in samples if name.startswith("usdcop_cache_requests")]

    asyncio.run(scenario())


def test_batch_reads_are_guarded_like_single_reads(
    fresh_redis: EmbeddedRedis, closed_port: int, data_dir: Path
) -> None:
    """GetObservations goes through the same guarded read as GetObservation: its Redis reads
    are timed, its failures counted and the breaker's opening is counted and logged."""
    write_observation(redis_client(fresh_redis))
    up = server_config(fresh_redis.port, data_dir, metrics_port=free_port(), cache_ttl_ms=0.0)
    down = server_config(
        closed_port, data_dir, metrics_port=free_port(), cache_ttl_ms=0.0, breaker_open_ms=60_000
    )
    request = pb.GetObservationsRequest(symbols=["USDCOP"])

    async def scenario(config: object, calls: int) -> Samples:
        async with running(config) as app:  # type: ignore[arg-type]
            for _ in range(calls):
                answer = await app.stub.GetObservations(request, timeout=10)
                assert answer.results[0].HasField("observation")
            assert app.server.metrics_url is not None
            _, samples = await asyncio.to_thread(scrape, app.server.metrics_url)
            return samples

    samples = asyncio.run(scenario(up, 2))
    assert value(samples, "usdcop_redis_read_seconds_count") == 2
    samples = asyncio.run(scenario(down, 5))
    assert value(samples, "usdcop_redis_read_failures_total", kind="error") == 3  # threshold
    assert value(samples, "usdcop_circuit_breaker_transitions_total", state="open") == 1


def test_metrics_off_by_default(fresh_redis: EmbeddedRedis, data_dir: Path) -> None:
    async def scenario() -> None:
        async with running(server_config(fresh_redis.port, data_dir)) as app:
            assert app.server.metrics_url is None

    asyncio.run(scenario())


def _worker_pids(stderr: list[str]) -> set[int]:
    return {int(line.split()[2]) for line in stderr if "listening on" in line}


@pytest.mark.timeout(120)
def test_two_workers_counts_add_up(
    fresh_redis: EmbeddedRedis, data_dir: Path, tmp_path: Path
) -> None:
    now_ns = time.time_ns()  # the workers run on the real clock
    write_observation(redis_client(fresh_redis), event_ns=dict.fromkeys(VIEWS, now_ns))
    port, metrics_port = free_port(), free_port()
    folder = tmp_path / "metrics"
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--workers", "2", "--port", str(port)],
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "FEAST_REDIS_PORT": str(fresh_redis.port),
            "USDCOP_DATA_DIR": str(data_dir),
            "USDCOP_METRICS_PORT": str(metrics_port),
            "USDCOP_METRICS_DIR": str(folder),
            "USDCOP_REDIS_TIMEOUT_MS": "1000",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while len(_worker_pids(lines)) < 2 or not any("metrics served" in x for x in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            lines.append(proc.stderr.readline())
        pids = _worker_pids(lines)
        calls_per_channel, channels = 7, 6
        for index in range(channels):
            # Distinct options: each channel is its own connection, spread by SO_REUSEPORT.
            options = [("grpc.primary_user_agent", f"metrics-test-{index}")]
            with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
                get = channel.unary_unary(
                    f"/{SERVICE}/GetObservation",
                    request_serializer=pb.GetObservationRequest.SerializeToString,
                    response_deserializer=pb.Observation.FromString,
                )
                for _ in range(calls_per_channel):
                    get(pb.GetObservationRequest(symbol="USDCOP"), timeout=10)
        total = calls_per_channel * channels
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        started = 0.0
        deadline = time.monotonic() + 10
        while started < total and time.monotonic() < deadline:
            time.sleep(0.2)
            _, samples = scrape(url)
            started = value(samples, "grpc_server_started_total", **grpc_labels("GetObservation"))
        assert started == total
        ok = value(
            samples, "grpc_server_handled_total", **grpc_labels("GetObservation", grpc_code="OK")
        )
        assert ok == total
        cache = "usdcop_cache_requests_total"
        hits = value(samples, cache, symbol="USDCOP", result="hit")
        misses = value(samples, cache, symbol="USDCOP", result="miss")
        assert hits + misses == total
        assert 1 <= misses <= 2 + 2 * channels  # one load per worker per second, at most
        assert {p.name for p in folder.glob("worker-*.json")} == {f"worker-{p}.json" for p in pids}

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert list(folder.iterdir()) == []  # the per-run snapshots are cleaned at shutdown
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stderr.close()


def test_age_counts_from_the_served_view(fresh_redis: EmbeddedRedis, data_dir: Path) -> None:
    """The age gauge follows the clock between answers (it is computed when scraped)."""
    write_observation(redis_client(fresh_redis))
    config = server_config(fresh_redis.port, data_dir, metrics_port=free_port())

    async def scenario() -> None:
        async with running(config) as app:
            await app.get()
            app.clock.advance(0.5)  # within the cache TTL: nothing reloaded
            assert app.server.metrics_url is not None
            _, samples = await asyncio.to_thread(scrape, app.server.metrics_url)
            age = value(samples, "usdcop_view_age_seconds", symbol="USDCOP", view=VIEWS[0])
            assert age == 60 + 0.5

    asyncio.run(scenario())
