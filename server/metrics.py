"""What the server counts, kept as plain ints on the request path, read as a ``Snapshot``.

What enters: hooks called by the service (cache hits, answers with their provenance, Redis
reads, breaker transitions), the gRPC handler wrapper (``instrument``), and the background
Redis memory sampler. What leaves: ``ServerMetrics.snapshot(now_ns)``, a plain mapping
``metric name -> {label values: value}`` that ``server.metrics_export`` turns into Prometheus
text (and merges across ``--workers`` processes).

Why plain ints: a cache hit costs the server ~10 us of Python; prometheus_client's
``Counter.inc``/``Histogram.observe`` take a lock and, in multiprocess mode, write an mmap per
call. Here a hit adds one dict increment, and the gRPC wrapper two clock reads, a ``bisect``
and three integer increments; the Prometheus objects are built only when scraped.

The metric names, kinds, labels and how several workers' values combine are declared once, in
``CATALOG``; the exporter, the dashboard test and the docs read it.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from online_store.breaker import BreakerState, CircuitBreaker
from online_store.read_plan import VIEW_LAYOUTS
from server.fallback import ComputeFallback
from server.observation import Provenance, SerializedObservation

LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
"""Upper bounds of the latency histograms, seconds: 50 us .. 1 s (p50 here is under 1 ms)."""
_BOUNDS_NS: tuple[int, ...] = tuple(round(bound * 1e9) for bound in LATENCY_BUCKETS_S)

_NS_PER_S = 1_000_000_000
BREAKER_STATES: tuple[str, ...] = tuple(state.value for state in BreakerState)


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric."""

    name: str
    """Name as exported (counters end in ``_total``)."""
    kind: str
    """``counter``, ``gauge`` or ``histogram``."""
    doc: str
    labels: tuple[str, ...]
    merge: str = "sum"
    """How the workers' values combine: ``sum``, ``max`` or ``min``."""


_GRPC = ("grpc_service", "grpc_method", "grpc_type")
_VIEW = ("symbol", "view")

CATALOG: tuple[MetricSpec, ...] = (
    MetricSpec("grpc_server_started_total", "counter", "RPCs started on the server.", _GRPC),
    MetricSpec(
        "grpc_server_handled_total",
        "counter",
        "RPCs completed on the server, by status code.",
        (*_GRPC, "grpc_code"),
    ),
    MetricSpec(
        "grpc_server_handling_seconds",
        "histogram",
        "Handler time of RPCs completed on the server (OK or not), seconds.",
        _GRPC,
    ),
    MetricSpec(
        "usdcop_view_answers_total",
        "counter",
        "Views answered by GetObservation, by source (online_store/fallback), fallback reason "
        "and from_cache (true: the answer came from the local cache).",
        (*_VIEW, "source", "reason", "from_cache"),
    ),
    MetricSpec(
        "usdcop_cache_requests_total",
        "counter",
        "GetObservation lookups of the local cache, by result (hit/miss).",
        ("symbol", "result"),
    ),
    MetricSpec(
        "usdcop_view_age_seconds",
        "gauge",
        "Feature freshness: now minus the event time of the view in the latest answer, seconds.",
        _VIEW,
        "max",
    ),
    MetricSpec(
        "usdcop_view_ttl_seconds",
        "gauge",
        "The view's TTL from the contract, seconds (freshness alerts compare the age with it).",
        ("view",),
        "max",
    ),
    MetricSpec(
        "usdcop_fallback_data_age_seconds",
        "gauge",
        "Now minus the event time of the compute fallback's row for the view, seconds.",
        _VIEW,
        "max",
    ),
    MetricSpec(
        "usdcop_redis_read_seconds",
        "histogram",
        "Online store reads (one HMGET + decode) that answered, seconds.",
        (),
    ),
    MetricSpec(
        "usdcop_redis_read_failures_total",
        "counter",
        "Online store reads that failed, by kind (error/timeout).",
        ("kind",),
    ),
    MetricSpec(
        "usdcop_circuit_breaker_state",
        "gauge",
        "1 for the breaker's current state (closed/open/half_open), 0 for the others.",
        ("state",),
        "max",
    ),
    MetricSpec(
        "usdcop_circuit_breaker_transitions_total",
        "counter",
        "Breaker state changes, by the state entered.",
        ("state",),
    ),
    MetricSpec(
        "usdcop_cache_tracking_up",
        "gauge",
        "1 while Redis push invalidation keeps the cache exact; 0 in TTL mode (tracking down).",
        (),
        "min",
    ),
    MetricSpec(
        "usdcop_cache_tracking_lost_total",
        "counter",
        "Times the invalidation stream was lost (the cache fell back to TTL mode).",
        (),
    ),
    MetricSpec(
        "usdcop_cache_invalidations_total",
        "counter",
        "Invalidation messages received from Redis for served keys (flushes included).",
        (),
    ),
    MetricSpec(
        "usdcop_served_log_entries_total",
        "counter",
        "Answers for the served log (the skew check's input), by result: written to Redis, or "
        "dropped (queue full or Redis refused; never a failed call).",
        ("result",),
    ),
    MetricSpec(
        "usdcop_redis_used_memory_bytes",
        "gauge",
        "Redis INFO memory used_memory, bytes (sampled in the background).",
        (),
        "max",
    ),
    MetricSpec(
        "usdcop_redis_maxmemory_bytes",
        "gauge",
        "Redis INFO memory maxmemory, bytes; 0 = no limit (sampled in the background).",
        (),
        "max",
    ),
    MetricSpec(
        "usdcop_redis_memory_sample_success",
        "gauge",
        "1 when the last background INFO memory sample succeeded, else 0.",
        (),
        "min",
    ),
)
SPECS: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOG}

Labels = tuple[str, ...]
HistogramValue = tuple[list[int], float]
"""Per-bucket (not cumulative) counts, one per bound plus +Inf, and the sum in seconds."""
Snapshot = dict[str, dict[Labels, Any]]
"""Metric name -> label values (in ``MetricSpec.labels`` order) -> float or HistogramValue."""


class LatencyHistogram:
    """Bucket counts as plain ints; ``record`` is a bisect and two increments."""

    __slots__ = ("counts", "sum_ns")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BOUNDS_NS) + 1)
        self.sum_ns = 0

    def record(self, elapsed_ns: int) -> None:
        self.counts[bisect_left(_BOUNDS_NS, elapsed_ns)] += 1
        self.sum_ns += elapsed_ns

    def value(self) -> HistogramValue:
        return list(self.counts), self.sum_ns / _NS_PER_S


class MethodStats:
    """One RPC method's counters."""

    __slots__ = ("codes", "grpc_type", "histogram", "started")

    def __init__(self, grpc_type: str = "unary") -> None:
        self.grpc_type = grpc_type
        self.started = 0
        self.codes: dict[str, int] = {}
        self.histogram = LatencyHistogram()

    def finished(self, code: str, elapsed_ns: int) -> None:
        self.codes[code] = self.codes.get(code, 0) + 1
        self.histogram.record(elapsed_ns)


Handler = Callable[[bytes, Any], Awaitable[bytes]]
StreamHandler = Callable[[bytes, Any], AsyncIterator[bytes]]


def _code_of(context: Any, error: BaseException) -> str:
    """The status a failed handler ended the call with (abort sets it on the context)."""
    if isinstance(error, Exception) and not isinstance(error, grpc.aio.AbortError):
        return "UNKNOWN"
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return "CANCELLED" if not isinstance(error, Exception) else "UNKNOWN"


class ServerMetrics:
    """The process's counters (module docstring). Request-path hooks only touch ints/dicts."""

    def __init__(self, *, cache_enabled: bool) -> None:
        self._cache_enabled = cache_enabled
        self.methods: dict[tuple[str, str], MethodStats] = {}
        self.cached_answers: dict[Provenance, int] = {}
        self.loaded_answers: dict[Provenance, int] = {}
        self.cache_misses: dict[str, int] = {}
        self.latest: dict[str, SerializedObservation] = {}
        self.redis_read = LatencyHistogram()
        self.redis_failures: dict[str, int] = {"error": 0, "timeout": 0}
        self.breaker_transitions: dict[str, int] = {}
        self.redis_memory: tuple[float, float] | None = None
        self.redis_memory_ok = 0.0
        self._breaker: CircuitBreaker | None = None
        self._fallback: ComputeFallback | None = None
        self._tracker: Any = None
        self._serving_log: Any = None

    # --- wiring (start-up) ----------------------------------------------------------------

    def watch(self, breaker: CircuitBreaker, fallback: ComputeFallback) -> None:
        """Read the breaker's state and the fallback's rows when a snapshot is taken."""
        self._breaker = breaker
        self._fallback = fallback

    def watch_serving_log(self, serving_log: Any) -> None:
        """Read the served log's ``written``/``dropped`` counts when a snapshot is taken."""
        self._serving_log = serving_log

    def watch_tracker(self, tracker: Any) -> None:
        """Read the invalidation tracker's ``healthy``/``lost_total``/``invalidations_total``
        when a snapshot is taken (only servers with cache tracking on have one)."""
        self._tracker = tracker

    def instrument(self, service: str, method: str, handler: Handler) -> Handler:
        """``handler`` counted and timed under the conventional ``grpc_server_*`` names."""
        stats = self.methods.setdefault((service, method), MethodStats())
        clock = time.perf_counter_ns
        record = stats.histogram.record
        codes = stats.codes

        async def timed(request: bytes, context: Any) -> bytes:
            stats.started += 1
            start = clock()
            try:
                response = await handler(request, context)
            except BaseException as error:
                stats.finished(_code_of(context, error), clock() - start)
                raise
            record(clock() - start)
            codes["OK"] = codes.get("OK", 0) + 1
            return response

        return timed

    def instrument_stream(self, service: str, method: str, handler: StreamHandler) -> StreamHandler:
        """A server-streaming ``handler`` counted under ``grpc_type="server_stream"``; its
        handling time is the stream's whole life (as go-grpc-prometheus counts it)."""
        stats = self.methods.setdefault((service, method), MethodStats("server_stream"))
        clock = time.perf_counter_ns

        async def timed(request: bytes, context: Any) -> AsyncIterator[bytes]:
            stats.started += 1
            start = clock()
            try:
                async for message in handler(request, context):
                    yield message
            except BaseException as error:
                stats.finished(_code_of(context, error), clock() - start)
                raise
            stats.finished("OK", clock() - start)

        return timed

    # --- request-path hooks ---------------------------------------------------------------

    def cache_hit(self, answer: SerializedObservation) -> None:
        """A GetObservation answered from the local cache."""
        counts = self.cached_answers
        key = answer.provenance
        if key is not None:
            counts[key] = counts.get(key, 0) + 1

    def answered(self, answer: SerializedObservation, from_cache: bool) -> None:
        """A GetObservation answered after the cache fast path (a load, or a shared one)."""
        key = answer.provenance
        if key is None:
            return
        counts = self.cached_answers if from_cache else self.loaded_answers
        counts[key] = counts.get(key, 0) + 1
        if self._cache_enabled and not from_cache:
            self.cache_misses[key.symbol] = self.cache_misses.get(key.symbol, 0) + 1
        self.latest[key.symbol] = answer

    def redis_answered(self, elapsed_ns: int) -> None:
        self.redis_read.record(elapsed_ns)

    def redis_failed(self, kind: str) -> None:
        """``kind``: ``error`` or ``timeout``."""
        self.redis_failures[kind] = self.redis_failures.get(kind, 0) + 1

    def breaker_changed(self, state: BreakerState) -> None:
        self.breaker_transitions[state.value] = self.breaker_transitions.get(state.value, 0) + 1

    def redis_memory_sampled(self, used_bytes: float, max_bytes: float) -> None:
        self.redis_memory = (used_bytes, max_bytes)
        self.redis_memory_ok = 1.0

    def redis_memory_failed(self) -> None:
        self.redis_memory_ok = 0.0

    # --- reading --------------------------------------------------------------------------

    def snapshot(self, now_ns: int) -> Snapshot:
        """Every metric's current values. Safe from another thread: each dict is copied first
        (one C call, atomic under the GIL) and only then iterated."""
        out: Snapshot = {spec.name: {} for spec in CATALOG}
        self._snapshot_calls(out)
        self._snapshot_answers(out)
        self._snapshot_views(out, now_ns)
        self._snapshot_store(out)
        return out

    def _snapshot_calls(self, out: Snapshot) -> None:
        for (service, method), stats in dict(self.methods).items():
            grpc_labels = (service, method, stats.grpc_type)
            out["grpc_server_started_total"][grpc_labels] = float(stats.started)
            for code, count in dict(stats.codes).items():
                out["grpc_server_handled_total"][(*grpc_labels, code)] = float(count)
            out["grpc_server_handling_seconds"][grpc_labels] = stats.histogram.value()

    def _snapshot_answers(self, out: Snapshot) -> None:
        answers = out["usdcop_view_answers_total"]
        for from_cache, counts in (("true", self.cached_answers), ("false", self.loaded_answers)):
            for provenance, count in dict(counts).items():
                for view, source, reason in provenance.views:
                    labels = (provenance.symbol, view, source, reason, from_cache)
                    answers[labels] = answers.get(labels, 0.0) + count
        if self._cache_enabled:
            hits: dict[str, int] = {}
            for provenance, count in dict(self.cached_answers).items():
                hits[provenance.symbol] = hits.get(provenance.symbol, 0) + count
            misses = dict(self.cache_misses)
            for symbol in hits.keys() | misses.keys():
                out["usdcop_cache_requests_total"][(symbol, "hit")] = float(hits.get(symbol, 0))
                out["usdcop_cache_requests_total"][(symbol, "miss")] = float(misses.get(symbol, 0))

    def _snapshot_views(self, out: Snapshot, now_ns: int) -> None:
        for symbol, answer in dict(self.latest).items():
            for layout, event_time_ns in zip(VIEW_LAYOUTS, answer.event_times_ns, strict=False):
                out["usdcop_view_age_seconds"][(symbol, layout.name)] = (
                    now_ns - event_time_ns
                ) / _NS_PER_S
        for layout in VIEW_LAYOUTS:
            out["usdcop_view_ttl_seconds"][(layout.name,)] = layout.ttl_ns / _NS_PER_S
        if self._fallback is not None:
            for symbol in self._fallback.symbols:
                row = self._fallback.row(symbol)
                if row is None:
                    continue
                for layout in VIEW_LAYOUTS:
                    age_s = (now_ns - row.event_time_of(layout.name)) / _NS_PER_S
                    out["usdcop_fallback_data_age_seconds"][(symbol, layout.name)] = age_s

    def _snapshot_store(self, out: Snapshot) -> None:
        out["usdcop_redis_read_seconds"][()] = self.redis_read.value()
        for kind, count in dict(self.redis_failures).items():
            out["usdcop_redis_read_failures_total"][(kind,)] = float(count)
        if self._breaker is not None:
            current = self._breaker.state.value
            for state in BREAKER_STATES:
                out["usdcop_circuit_breaker_state"][(state,)] = float(state == current)
        for state in BREAKER_STATES:
            count = self.breaker_transitions.get(state, 0)
            out["usdcop_circuit_breaker_transitions_total"][(state,)] = float(count)
        tracker = self._tracker
        if tracker is not None:
            out["usdcop_cache_tracking_up"][()] = float(bool(tracker.healthy))
            out["usdcop_cache_tracking_lost_total"][()] = float(tracker.lost_total)
            out["usdcop_cache_invalidations_total"][()] = float(tracker.invalidations_total)
        serving_log = self._serving_log
        if serving_log is not None:
            out["usdcop_served_log_entries_total"][("written",)] = float(serving_log.written)
            out["usdcop_served_log_entries_total"][("dropped",)] = float(serving_log.dropped)
        if self.redis_memory is not None:
            used, limit = self.redis_memory
            out["usdcop_redis_used_memory_bytes"][()] = used
            out["usdcop_redis_maxmemory_bytes"][()] = limit
        out["usdcop_redis_memory_sample_success"][()] = self.redis_memory_ok
