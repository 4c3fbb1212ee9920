"""Server assembly: the gRPC server stack, ``create_server`` (for tests and tools) and ``serve``.

What enters: a ``ServerConfig`` (and optionally a clock). What leaves: a started server bound
to its port, with ObservationService, ``grpc.health.v1`` and server reflection.

- ``new_grpc_server(config)``: the bare ``grpc.aio`` server with the shared options; the
  benchmark's echo scenario builds its floor on this same function.
- ``create_server(config)`` -> (server, port): wires the Redis client, read plans, cache,
  breaker, fallback and service, loads the fallback, probes Redis, starts serving.
- ``serve(config)``: ``create_server`` + run until SIGTERM/SIGINT, then a graceful shutdown.
- ``run_event_loop(main, event_loop)``: runs a process's main coroutine on the configured
  event loop (uvloop by default; the echo floor runs on the same).

Health: NOT_SERVING until Redis has answered once or the fallback has data (a background task
keeps checking), then SERVING; NOT_SERVING again as soon as shutdown begins. When Redis holds a
usable row of every view of every served symbol at start-up, the server is SERVING before the
fallback's first rows exist (they are computed in a thread right after, ~0.1-0.3 s, numpy and
the builder imported there): a read that needs the fallback in that window (a view expiring,
Redis failing) is answered UNAVAILABLE saying the fallback is still loading, never with other
data. Otherwise (Redis down, a key missing, a view expired) SERVING waits for the first
refresh, as long as it takes and no longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from canonical.served_log import stream_key as served_stream_key
from canonical.state_events import stream_key
from core.clock import Clock, SystemClock
from online_store.breaker import CircuitBreaker
from online_store.errors import StoreError
from online_store.health import CONFIRM_TIMEOUT_S, TimeoutJudge
from online_store.read_plan import ReadPlan, read_plans
from online_store.reader import StoreReader, new_cluster_clients
from online_store.startup_check import fatal_store_problem
from online_store.tracking import CacheInvalidator, InvalidationTracker
from online_store.writer import StateWriter
from server.config import ServerConfig
from server.errors import StartupError
from server.fallback import ComputeFallback
from server.metrics import Handler, StreamHandler
from server.metrics_wiring import MetricsRuntime, start_metrics
from server.observation import SerializedObservation
from server.operator_warnings import warn_operator
from server.security import PushAuthorizer, server_credentials
from server.service import SERVICE_NAME, ObservationService
from server.serving_log import ServingLog
from server.ttl_cache import TtlCache
from server.watch import WatchHub

logger = logging.getLogger(__name__)

T = TypeVar("T")

_STARTUP_PING_TIMEOUT_S = 1.0
"""Bound on the start-up (and background) Redis PING; not on any request path."""


REFUSE_BEFORE_CLOSE_S = 0.1
"""After the drain: how long new calls are answered UNAVAILABLE before the port closes."""

_MAX_PENDING_CALLS = 100_000
"""Calls gRPC core holds for the server before dropping new ones (a few KB each)."""


def grpc_server_options(config: ServerConfig) -> list[tuple[str, Any]]:
    """Channel options shared by every server this project starts (observation and echo)."""
    return [
        # SO_REUSEPORT only when several workers share the port on purpose; otherwise a port
        # already in use must fail loudly instead of silently splitting traffic.
        ("grpc.so_reuseport", 1 if config.workers > 1 else 0),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.max_receive_message_length", 1 << 20),
        # Calls the server has not picked up yet wait in gRPC core's pending queue. Beyond
        # 1,000 of them (3,000 hard) core drops new ones at random and the client sees a bare
        # CANCELLED (5,000 concurrent calls lost ~2,000 that way, echo server alike). Queue them
        # instead: the service's bound on unary calls in progress (max_concurrent_rpcs) then
        # answers the excess with RESOURCE_EXHAUSTED, which clients retry.
        ("grpc.server.max_pending_requests", _MAX_PENDING_CALLS),
        ("grpc.server.max_pending_requests_hard_limit", _MAX_PENDING_CALLS),
    ]


def run_event_loop(main: Coroutine[Any, Any, T], event_loop: str) -> T:
    """Run ``main`` to completion on a new ``uvloop`` or ``asyncio`` event loop.

    uvloop: in interleaved A/B runs of the echo floor (``python -m benchmarks.echo_ab``) it
    cut the server's CPU per call by 10-20 % and p50 by 3-12 % (server/README.md).
    """
    if event_loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def new_grpc_server(config: ServerConfig) -> grpc.aio.Server:
    """A bare ``grpc.aio`` server with the project's shared options (no services, not bound)."""
    # No maximum_concurrent_rpcs here: gRPC core's bound counts every call alike (1,000 watch
    # streams refused every GetObservation and health check) and its refusals reach no
    # handler, so no metric counts them. The service bounds unary calls itself
    # (ObservationService max_concurrent_calls), watch streams have their own bound, health
    # checks none.
    return grpc.aio.server(options=grpc_server_options(config))


def _unary(handler: Any) -> grpc.RpcMethodHandler[bytes, bytes]:
    # No (de)serializers: handlers take and return bytes (see service.py's docstring).
    return grpc.unary_unary_rpc_method_handler(handler)


class ObservationServer(grpc.aio.Server):
    """The started server; ``stop()`` also flips health and releases Redis and tasks."""

    def __init__(
        self,
        inner: grpc.aio.Server,
        health_servicer: health_aio.HealthServicer,
        background: list[asyncio.Task[None]],
        closers: list[Any],
        metrics_url: str | None = None,
    ) -> None:
        self.metrics_url = metrics_url
        """Where this process serves /metrics (None: metrics off, or served by the parent)."""
        self._inner = inner
        self._health = health_servicer
        self._background = background
        self._closers = closers
        self._stopped = False
        self.tracker: InvalidationTracker | None = None
        """The cache's invalidation stream (None when USDCOP_CACHE_TRACKING is off)."""
        self.service: ObservationService | None = None
        """The handlers (told to refuse new calls just before the port closes)."""
        self.watch_hub: WatchHub | None = None
        """WatchObservations' subscribers."""

    async def begin_shutdown(self) -> None:
        """Report NOT_SERVING on every service (load balancers stop sending new calls)."""
        await self._health.enter_graceful_shutdown()

    async def shutdown(self, drain_s: float, grace_s: float) -> None:
        """NOT_SERVING first; keep accepting calls for ``drain_s`` (load balancers see the
        health change and move away); then refuse new calls and let in-flight ones finish
        within ``grace_s``."""
        await self.begin_shutdown()
        if drain_s > 0:
            logger.info("draining: NOT_SERVING, still accepting calls for %g s", drain_s)
            await asyncio.sleep(drain_s)
        if self.service is not None:
            # Calls that reach the server in the last moments before the port closes are
            # refused with UNAVAILABLE (clients retry it) instead of being cancelled by the
            # transport while queued (seen: 5 CANCELLED of 401 late calls in a fault run).
            self.service.refuse_new_calls()
            await asyncio.sleep(REFUSE_BEFORE_CLOSE_S)
        await self.stop(grace_s)

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING, refuse new calls, let in-flight calls finish within ``grace``."""
        await self.begin_shutdown()
        await self._inner.stop(grace)
        if self._stopped:
            return
        self._stopped = True
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for close in self._closers:
            await close()

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[Any]) -> None:
        self._inner.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: Any) -> None:
        # Newer than the grpc stubs: registered methods skip the generic-handler lookup per call.
        self._inner.add_registered_method_handlers(service_name, method_handlers)  # type: ignore[attr-defined]

    def add_insecure_port(self, address: str) -> int:
        return int(self._inner.add_insecure_port(address))

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return int(self._inner.add_secure_port(address, server_credentials))

    async def start(self) -> None:
        await self._inner.start()

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        return bool(await self._inner.wait_for_termination(timeout))


class _Health:
    """Flips SERVING once the store answered or the fallback has data."""

    def __init__(self, servicer: health_aio.HealthServicer) -> None:
        self.servicer = servicer
        self.serving = False
        self._pending: set[asyncio.Task[None]] = set()

    async def set_serving(self) -> None:
        if self.serving:
            return
        self.serving = True
        for name in ("", SERVICE_NAME):
            await self.servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        logger.info("health: SERVING")

    def mark_store_answered(self) -> None:
        """Request-path hook: a cheap flag check once SERVING."""
        if not self.serving:
            task = asyncio.ensure_future(self.set_serving())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)


async def _store_serves_alone(
    reader: StoreReader, plans: Mapping[str, ReadPlan], timeout_s: float
) -> bool:
    """True when Redis holds a usable (present, decodable, unexpired) row of every view of every
    served symbol: answers need no fallback row right now."""
    try:
        reads = await reader.read_many(list(plans.values()), timeout_s)
    except StoreError:
        return False
    return all(view.values is not None for read in reads for view in read.views)


async def _watch_health(
    health_state: _Health, reader: StoreReader, fallback: ComputeFallback, period_s: float
) -> None:
    while not health_state.serving:
        if fallback.loaded or await reader.ping(_STARTUP_PING_TIMEOUT_S):
            await health_state.set_serving()
            return
        await asyncio.sleep(period_s)


async def create_server(
    config: ServerConfig, *, clock: Clock | None = None
) -> tuple[ObservationServer, int]:
    """Build, bind and start the server; returns it with the bound port (``config.port`` 0 ok)."""
    clock = clock or SystemClock()
    address = config.redis_address
    problem = await fatal_store_problem(address, _STARTUP_PING_TIMEOUT_S)
    if problem is not None:
        raise StartupError(problem)
    plans = read_plans(config.symbols, config.project)
    redis_client = address.async_client(config.redis_timeout_s)
    cluster_clients = new_cluster_clients(address, config.redis_timeout_s)
    reader = StoreReader(
        address,
        plans,
        clock,
        timeout_s=config.redis_timeout_s,
        max_skew_ns=int(config.max_clock_skew_s * 1_000_000_000),
    )
    fallback = ComputeFallback(
        config.data_dir,
        config.symbols,
        config.fallback_refresh_s,
        postgres=config.fallback_postgres(),
    )
    health_servicer = health_aio.HealthServicer()
    health_state = _Health(health_servicer)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    cache = TtlCache[str, SerializedObservation](
        config.cache_ttl_ns,
        clock,
        tracked_ttl_ns=config.cache_tracked_ttl_ns,
        max_age_of=lambda answer: answer.store_valid_for_ns,
    )
    breaker = CircuitBreaker(config.breaker_failure_threshold, config.breaker_open_ms, clock)
    observability = start_metrics(
        config, breaker=breaker, fallback=fallback, redis_client=redis_client, clock=clock
    )
    timeout_judge = TimeoutJudge(reader.ping, breaker, CONFIRM_TIMEOUT_S)
    serving_log = (
        ServingLog(
            redis_client,
            served_stream_key(config.project),
            clock,
            stream_max_len=config.served_log_max_len,
            cluster=cluster_clients,
        )
        if config.served_log
        else None
    )
    service = ObservationService(
        plans=plans,
        reader=reader,
        writer=StateWriter(
            redis_client,
            cluster_clients,
            stream=stream_key(config.project),
            stream_max_len=config.state_events_max_len,
        ),
        fallback=fallback,
        breaker=breaker,
        cache=cache,
        clock=clock,
        redis_timeout_s=config.redis_timeout_s,
        on_store_answered=health_state.mark_store_answered,
        batch_max_symbols=config.batch_max_symbols,
        watch_max_subscribers=config.watch_max_subscribers,
        max_concurrent_calls=config.max_concurrent_rpcs,
        watch_heartbeat_ms=config.watch_heartbeat_ms,
        watch_poll_s=max(config.cache_ttl_ms, 100.0) / 1000.0,
        metrics=None if observability is None else observability.metrics,
        max_clock_skew_ns=int(config.max_clock_skew_s * 1_000_000_000),
        push_authorizer=PushAuthorizer(config.push_token, config.push_allowed_clients),
        on_store_timeout=timeout_judge.suspect,
        serving_log=serving_log,
    )
    tracker: InvalidationTracker | None = None
    if config.cache_tracking and config.redis_type == "redis_cluster":
        # One tracking connection per master is not built yet: TTL mode, said once.
        logger.warning("cache invalidation tracking is not supported on redis_cluster: TTL mode")
    elif config.cache_tracking:
        tracker = InvalidationTracker(address, {plan.key: plan.symbol for plan in plans.values()})
        tracker.add_listener(CacheInvalidator(cache))  # first: the hub's reloads see it dropped
        tracker.add_listener(service.watch_hub)
        if observability is not None:
            observability.metrics.watch_tracker(tracker)
    if observability is not None and serving_log is not None:
        observability.metrics.watch_serving_log(serving_log)

    inner = new_grpc_server(config)
    handlers = {
        method: _unary(handler)
        for method, handler in _instrumented(
            {
                "GetObservation": service.get_observation,
                "DescribeObservation": service.describe_observation,
                "PushState": service.push_state,
                "GetObservations": service.get_observations,
            },
            observability,
        ).items()
    }
    handlers["WatchObservations"] = grpc.unary_stream_rpc_method_handler(
        _instrumented_stream("WatchObservations", service.watch_observations, observability)
    )
    inner.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    inner.add_registered_method_handlers(SERVICE_NAME, handlers)  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, inner)
    if config.reflection:
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), inner
        )
    bind = f"{config.bind_address}:{config.port}"
    credentials = server_credentials(config)
    try:
        if credentials is None:
            port = inner.add_insecure_port(bind)
        else:
            port = inner.add_secure_port(bind, credentials)
    except RuntimeError:  # grpc's "Failed to bind to address"
        port = 0
    if port == 0:
        if observability is not None:
            await observability.close()
        raise StartupError(f"cannot bind {bind}: is the port in use or the address wrong?")

    # Start-up work (not on any request path): a warm Redis connection, and whether Redis alone
    # can answer every served symbol now. If so, SERVING at once: the fallback's first rows are
    # computed once the server is up (below), and a read that needs one before it exists (a
    # view expiring in that fraction of a second) is answered UNAVAILABLE ("the compute
    # fallback is still loading"), never with other data. Otherwise SERVING waits for them.
    await warn_operator(config, redis_client, plans)
    redis_answered = await reader.ping(_STARTUP_PING_TIMEOUT_S)
    if redis_answered and await _store_serves_alone(reader, plans, _STARTUP_PING_TIMEOUT_S):
        await health_state.set_serving()

    closers: list[Any] = [reader.aclose, service.watch_hub.aclose]
    background = [
        asyncio.create_task(service.watch_hub.run_poll_loop(), name="watch-poll"),
    ]
    if serving_log is not None:
        background.append(asyncio.create_task(serving_log.run(), name="served-log"))
    closers.insert(0, timeout_judge.aclose)
    closers.append(redis_client.aclose)
    if cluster_clients is not None:
        closers.append(cluster_clients.aclose)
    if tracker is not None:
        # Bounded (1 s) start-up attempt, so the first answers may already be held long.
        await tracker.connect_once()
        background.append(asyncio.create_task(tracker.run(), name="invalidation-tracking"))
        closers.append(tracker.aclose)
    if observability is not None:
        background += [asyncio.create_task(job) for job in observability.jobs]
        closers.insert(0, observability.close)
    server = ObservationServer(
        inner,
        health_servicer,
        background,
        closers,
        None
        if observability is None or observability.endpoint is None
        else observability.endpoint.url,
    )
    server.tracker = tracker
    server.watch_hub = service.watch_hub
    server.service = service
    await server.start()
    # The fallback's first rows, after SERVING: their thread (numpy and the builder imported,
    # the files read, ~0.1-0.3 s) no longer delays it, nor competes with it for the GIL.
    # create_server still returns with them (callers and tests rely on that).
    try:
        await fallback.refresh()
    except Exception:  # the server is up: the refresh loop retries, and health tells the rest
        logger.exception("fallback: the first refresh failed")
    if not health_state.serving:
        if redis_answered or fallback.loaded:
            await health_state.set_serving()
        else:
            logger.warning("neither Redis nor fallback data is available yet: NOT_SERVING")
    background += [
        asyncio.create_task(fallback.run_refresh_loop(), name="fallback-refresh"),
        asyncio.create_task(
            _watch_health(health_state, reader, fallback, config.fallback_refresh_s),
            name="health-watch",
        ),
    ]
    return server, port


def _instrumented(
    handlers: dict[str, Handler], observability: MetricsRuntime | None
) -> dict[str, Handler]:
    """The handlers counted and timed as ``grpc_server_*`` when metrics are on."""
    if observability is None:
        return handlers
    instrument = observability.metrics.instrument
    return {
        method: instrument(SERVICE_NAME, method, handler) for method, handler in handlers.items()
    }


def _instrumented_stream(
    method: str, handler: StreamHandler, observability: MetricsRuntime | None
) -> StreamHandler:
    """A server-streaming handler counted and timed (for its whole life) when metrics are on."""
    if observability is None:
        return handler
    return observability.metrics.instrument_stream(SERVICE_NAME, method, handler)


async def serve(config: ServerConfig) -> None:
    """Run until SIGTERM/SIGINT, then shut down gracefully within ``config.grace_period_s``."""
    # Handlers first: a signal during start-up then stops the server right after it starts.
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    server, port = await create_server(config)
    logger.info(
        "usdcop observation server listening on %s:%d (redis %s:%d, cache %g ms)",
        config.bind_address,
        port,
        config.redis_host,
        config.redis_port,
        config.cache_ttl_ms,
    )
    if server.metrics_url is not None:
        logger.info("metrics served on %s", server.metrics_url, extra={"event": "metrics_url"})
    await stop_requested.wait()
    logger.info(
        "shutting down: drain %g s, then in-flight calls get %g s",
        config.drain_period_s,
        config.grace_period_s,
    )
    await server.shutdown(config.drain_period_s, config.grace_period_s)
    logger.info("stopped")
