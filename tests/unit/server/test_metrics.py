"""The metric state (plain ints), its Prometheus rendering, the cross-worker merge and the
JSON log lines, without sockets."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import grpc
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from usdcop.observation.v1 import observation_pb2 as pb

from core.clock import ManualClock
from online_store.breaker import CircuitBreaker
from online_store.read_plan import VIEW_LAYOUTS
from online_store.reader import StoreRead, ViewRead
from server.config import ServerConfig
from server.errors import ConfigError
from server.fallback import FallbackRow
from server.logging_setup import JsonFormatter
from server.metrics import CATALOG, LATENCY_BUCKETS_S, LatencyHistogram, ServerMetrics
from server.metrics_export import (
    SnapshotCollector,
    decode_snapshot,
    encode_snapshot,
    merge,
)
from server.observation import assemble_observation, provenance_of

NOW_NS = 1_765_564_200_000_000_000
STORE_EVENT_NS = NOW_NS - 90 * 10**9
FALLBACK_ROW = FallbackRow(values=(0.5,) * 15, event_time_ns=NOW_NS - 600 * 10**9,
                           state_event_time_ns=NOW_NS - 300 * 10**9)  # fmt: skip


def store_read(expired_view: str | None = None) -> StoreRead:
    views = []
    for layout in VIEW_LAYOUTS:
        n = layout.feature_slots.stop - layout.feature_slots.start
        if layout.name == expired_view:
            views.append(ViewRead(None, STORE_EVENT_NS, pb.FALLBACK_REASON_VIEW_EXPIRED))
        else:
            views.append(ViewRead((1.0,) * n, STORE_EVENT_NS, pb.FALLBACK_REASON_NONE))
    return StoreRead(views=tuple(views))


def render(metrics_snapshot: dict[str, Any]) -> dict[tuple[str, frozenset[Any]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: metrics_snapshot))
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_latency_buckets_are_upper_inclusive_from_50us_to_1s() -> None:
    assert LATENCY_BUCKETS_S[0] == 0.00005 and LATENCY_BUCKETS_S[-1] == 1.0
    histogram = LatencyHistogram()
    for elapsed_ns in (50_000, 50_001, 999_999_999, 1_000_000_000, 1_000_000_001):
        histogram.record(elapsed_ns)
    counts, sum_s = histogram.value()
    assert counts[0] == 1  # 50 us is in le=5e-05
    assert counts[1] == 1  # 50.001 us is in le=0.0001
    assert counts[len(LATENCY_BUCKETS_S) - 1] == 2  # le=1.0 holds 0.999999999 s and 1 s
    assert counts[-1] == 1  # +Inf
    assert sum_s == pytest.approx(3.000100001)


def test_answers_by_view_source_reason_and_cache() -> None:
    metrics = ServerMetrics(cache_enabled=True)
    fresh = assemble_observation("USDCOP", store_read(), FALLBACK_ROW, NOW_NS)
    partly = assemble_observation("USDCOP", store_read("state_features"), FALLBACK_ROW, NOW_NS)
    metrics.answered(fresh, from_cache=False)
    for _ in range(3):
        metrics.cache_hit(fresh)
    metrics.answered(partly, from_cache=False)
    metrics.answered(partly, from_cache=True)  # a caller that shared a load in flight

    samples = render(metrics.snapshot(NOW_NS + 5 * 10**9))

    def answers(view: str, source: str, reason: str, from_cache: str) -> float:
        labels = {"symbol": "USDCOP", "view": view, "source": source, "reason": reason}
        labels["from_cache"] = from_cache
        return samples[("usdcop_view_answers_total", frozenset(labels.items()))]

    assert answers("technical_features", "online_store", "none", "false") == 2
    assert answers("technical_features", "online_store", "none", "true") == 4
    assert answers("state_features", "online_store", "none", "true") == 3
    assert answers("state_features", "fallback", "view_expired", "false") == 1
    assert answers("state_features", "fallback", "view_expired", "true") == 1
    hit = frozenset({("symbol", "USDCOP"), ("result", "hit")})
    miss = frozenset({("symbol", "USDCOP"), ("result", "miss")})
    assert samples[("usdcop_cache_requests_total", hit)] == 4
    assert samples[("usdcop_cache_requests_total", miss)] == 2
    # The latest answer serves state_features from the fallback: its age is the fallback's.
    age = {
        view: samples[
            ("usdcop_view_age_seconds", frozenset({("symbol", "USDCOP"), ("view", view)}))
        ]
        for view in ("technical_features", "state_features")
    }
    assert age == {"technical_features": 95.0, "state_features": 305.0}


def test_provenance_is_interned() -> None:
    sources = (pb.VALUE_SOURCE_ONLINE_STORE,) * 3
    reasons = (pb.FALLBACK_REASON_NONE,) * 3
    assert provenance_of("USDCOP", sources, reasons) is provenance_of("USDCOP", sources, reasons)
    assert provenance_of("USDCOP", sources, reasons).views[0] == (
        "technical_features",
        "online_store",
        "none",
    )


def test_breaker_state_is_one_hot() -> None:
    clock = ManualClock(wall_ns=NOW_NS)
    breaker = CircuitBreaker(1, 1000.0, clock)
    metrics = ServerMetrics(cache_enabled=False)
    metrics.watch(breaker, _NoFallback())  # type: ignore[arg-type]
    breaker.allow()
    breaker.record_failure()
    state = metrics.snapshot(NOW_NS)["usdcop_circuit_breaker_state"]
    assert state == {("closed",): 0.0, ("open",): 1.0, ("half_open",): 0.0}


class _NoFallback:
    symbols = ("USDCOP",)

    def row(self, symbol: str) -> None:
        return None


def test_instrumented_handler_counts_codes_and_times() -> None:
    metrics = ServerMetrics(cache_enabled=False)

    async def ok(request: bytes, context: Any) -> bytes:
        return b"answer"

    async def refused(request: bytes, context: Any) -> bytes:
        context.code_set = grpc.StatusCode.NOT_FOUND
        raise grpc.aio.AbortError()

    class Context:
        code_set: grpc.StatusCode | None = None

        def code(self) -> grpc.StatusCode | None:
            return self.code_set

    timed_ok = metrics.instrument("svc", "Get", ok)
    timed_refused = metrics.instrument("svc", "Get", refused)

    async def calls() -> None:
        assert await timed_ok(b"", Context()) == b"answer"
        assert await timed_ok(b"", Context()) == b"answer"
        with pytest.raises(grpc.aio.AbortError):
            await timed_refused(b"", Context())

    asyncio.run(calls())
    snapshot = metrics.snapshot(NOW_NS)
    assert snapshot["grpc_server_started_total"] == {("svc", "Get", "unary"): 3.0}
    assert snapshot["grpc_server_handled_total"] == {
        ("svc", "Get", "unary", "OK"): 2.0,
        ("svc", "Get", "unary", "NOT_FOUND"): 1.0,
    }
    counts, _ = snapshot["grpc_server_handling_seconds"][("svc", "Get", "unary")]
    assert sum(counts) == 3


def test_merge_sums_counters_and_histograms_and_combines_live_gauges() -> None:
    one = {
        "grpc_server_started_total": {("s", "m", "unary"): 3.0},
        "usdcop_redis_read_seconds": {(): ([1, 2] + [0] * 13, 0.5)},
        "usdcop_view_age_seconds": {("USDCOP", "macro_features"): 10.0},
        "usdcop_redis_memory_sample_success": {(): 1.0},
    }
    two = {
        "grpc_server_started_total": {("s", "m", "unary"): 4.0},
        "usdcop_redis_read_seconds": {(): ([0, 1] + [0] * 13, 0.25)},
        "usdcop_view_age_seconds": {("USDCOP", "macro_features"): 12.0},
        "usdcop_redis_memory_sample_success": {(): 0.0},
    }
    gone = {
        "grpc_server_started_total": {("s", "m", "unary"): 5.0},
        "usdcop_view_age_seconds": {("USDCOP", "macro_features"): 99.0},
    }
    merged = merge([one, two], [gone])
    assert merged["grpc_server_started_total"] == {("s", "m", "unary"): 12.0}
    assert merged["usdcop_redis_read_seconds"] == {(): ([1, 3] + [0] * 13, 0.75)}
    assert merged["usdcop_view_age_seconds"] == {("USDCOP", "macro_features"): 12.0}  # max, live
    assert merged["usdcop_redis_memory_sample_success"] == {(): 0.0}  # min


def test_snapshot_file_format_round_trips() -> None:
    metrics = ServerMetrics(cache_enabled=True)
    metrics.answered(assemble_observation("USDCOP", store_read(), FALLBACK_ROW, NOW_NS), False)
    metrics.redis_answered(120_000)
    snapshot = metrics.snapshot(NOW_NS)
    decoded = decode_snapshot(encode_snapshot(snapshot))
    assert decoded["usdcop_redis_read_seconds"] == {
        (): tuple(snapshot["usdcop_redis_read_seconds"][()])
    }
    assert decoded["usdcop_view_answers_total"] == snapshot["usdcop_view_answers_total"]
    assert set(decoded) == {spec.name for spec in CATALOG}


def test_json_log_line_carries_the_extra_fields() -> None:
    record = logging.LogRecord("server.service", logging.WARNING, __file__, 1, "x %s", ("y",), None)
    record.__dict__.update({"event": "rpc_error", "peer": "ipv4:127.0.0.1:5", "request_id": "r1"})
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["message"] == "x y"
    assert entry["level"] == "WARNING" and entry["logger"] == "server.service"
    assert (entry["event"], entry["peer"], entry["request_id"]) == (
        "rpc_error",
        "ipv4:127.0.0.1:5",
        "r1",
    )
    assert "\n" not in line


def test_metrics_and_log_settings_are_validated() -> None:
    assert ServerConfig().metrics_port == 0  # off unless asked for
    with pytest.raises(ConfigError, match="metrics_port"):
        ServerConfig(metrics_port=70000)
    with pytest.raises(ConfigError, match="must differ"):
        ServerConfig(port=9000, metrics_port=9000)
    with pytest.raises(ConfigError, match="log_format"):
        ServerConfig(log_format="xml")
    config = ServerConfig.from_env({"USDCOP_METRICS_PORT": "9464", "USDCOP_LOG_FORMAT": "json"})
    assert (config.metrics_port, config.log_format) == (9464, "json")
    assert "hunter2" not in repr(ServerConfig(redis_password="hunter2"))
