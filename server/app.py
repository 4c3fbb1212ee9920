"""Server assembly: the gRPC server stack, ``create_server`` (for tests and tools) and ``serve``.

What enters: a ``ServerConfig`` (and optionally a clock). What leaves: a started server bound
to its port, with ObservationService, ``grpc.health.v1`` and server reflection.

- ``new_grpc_server(config)``: the bare ``grpc.aio`` server with the shared options; the
  benchmark's echo scenario builds its floor on this same function.
- ``create_server(config)`` -> (server, port): composes the online store
  (``online_store.store.OnlineStore``: every Redis resource of the process), the compute
  fallback, the cache, the metrics and the service, binds, starts serving, loads the fallback.
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

Shutdown (``ObservationServer.shutdown``): health NOT_SERVING, the drain, new calls refused,
the port closed (in-flight calls finish within the grace period), then the parts closed in
order, each stopping its own tasks: the health watch, the service (its watch hub), the served
log (one last flush), the fallback (its refresh loop), the metrics (a last snapshot), the store
(the timeout judge, the connections, the invalidation stream).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any, Protocol, TypeVar

import grpc
from grpc_health.v1 import health as health_api
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from canonical.served_log import stream_key as served_stream_key
from canonical.state_events import stream_key
from core.clock import Clock, SystemClock
from core.tasks import stop_tasks
from online_store.read_plan import read_plans
from online_store.startup_check import fatal_store_problem
from online_store.store import OnlineStore, StoreSettings
from online_store.tracking import CacheInvalidator, InvalidationTracker
from server.config import ServerConfig
from server.errors import StartupError
from server.fallback import ComputeFallback
from server.metrics import Handler, StreamHandler
from server.metrics_runtime import MetricsRuntime, start_metrics
from server.observation import SerializedObservation
from server.operator_warnings import warn_operator
from server.security import PushAuthorizer, server_credentials
from server.service import SERVICE_NAME, ObservationService, ServiceSettings
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


class _Closable(Protocol):
    """A part of the server: ``aclose`` stops its own tasks and releases what it holds."""

    async def aclose(self) -> None: ...


class ServingHealth:
    """``grpc.health.v1``: NOT_SERVING until the store answered or the fallback has data, then
    SERVING; NOT_SERVING again as soon as shutdown begins. Until SERVING, a background task
    (``watch``) keeps checking."""

    def __init__(self) -> None:
        self.servicer = health_aio.HealthServicer()
        self.serving = False
        self._pending: set[asyncio.Task[None]] = set()
        self._watch: asyncio.Task[None] | None = None

    async def begin(self) -> None:
        """NOT_SERVING on every service name (before anything else starts)."""
        for name in ("", SERVICE_NAME):
            await self.servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

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

    def watch(self, store: OnlineStore, fallback: ComputeFallback, period_s: float) -> None:
        """Until SERVING: every ``period_s``, SERVING once the fallback has rows or Redis
        answers a PING."""
        self._watch = asyncio.create_task(
            self._watch_until_serving(store, fallback, period_s), name="health-watch"
        )

    async def _watch_until_serving(
        self, store: OnlineStore, fallback: ComputeFallback, period_s: float
    ) -> None:
        while not self.serving:
            if fallback.loaded or await store.ping(_STARTUP_PING_TIMEOUT_S):
                await self.set_serving()
                return
            await asyncio.sleep(period_s)

    async def enter_graceful_shutdown(self) -> None:
        await self.servicer.enter_graceful_shutdown()

    async def aclose(self) -> None:
        task, self._watch = self._watch, None
        await stop_tasks(task)


class ObservationServer(grpc.aio.Server):
    """The started server; ``stop()`` also flips health and closes its parts, in order."""

    def __init__(  # noqa: PLR0913 - the server's parts; options keyword-only
        self,
        inner: grpc.aio.Server,
        health: ServingHealth,
        service: ObservationService,
        store: OnlineStore,
        *,
        parts: Sequence[_Closable],
        metrics_url: str | None = None,
    ) -> None:
        self.metrics_url = metrics_url
        """Where this process serves /metrics (None: metrics off, or served by the parent)."""
        self._inner = inner
        self._health = health
        self._service = service
        self._store = store
        self._parts = tuple(parts)
        self._stopped = False

    @property
    def tracker(self) -> InvalidationTracker | None:
        """The cache's invalidation stream (None when USDCOP_CACHE_TRACKING is off)."""
        return self._store.tracker

    @property
    def service(self) -> ObservationService:
        """The handlers (told to refuse new calls just before the port closes)."""
        return self._service

    @property
    def watch_hub(self) -> WatchHub:
        """WatchObservations' subscribers."""
        return self._service.watch_hub

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
        # Calls that reach the server in the last moments before the port closes are refused
        # with UNAVAILABLE (clients retry it) instead of being cancelled by the transport while
        # queued (seen: 5 CANCELLED of 401 late calls in a fault run).
        self._service.refuse_new_calls()
        await asyncio.sleep(REFUSE_BEFORE_CLOSE_S)
        await self.stop(grace_s)

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING, refuse new calls, let in-flight calls finish within ``grace``,
        then close the parts in order (each stops its own tasks)."""
        await self.begin_shutdown()
        await self._inner.stop(grace)
        if self._stopped:
            return
        self._stopped = True
        await self._health.aclose()
        for part in self._parts:
            await part.aclose()

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


async def create_server(
    config: ServerConfig, *, clock: Clock | None = None
) -> tuple[ObservationServer, int]:
    """Build, bind and start the server; returns it with the bound port (``config.port`` 0 ok)."""
    clock = clock or SystemClock()
    problem = await fatal_store_problem(config.redis_address, _STARTUP_PING_TIMEOUT_S)
    if problem is not None:
        raise StartupError(problem)
    health = ServingHealth()
    await health.begin()
    metrics = start_metrics(config, clock)
    counters = None if metrics is None else metrics.metrics
    plans = read_plans(config.symbols, config.project)
    store = OnlineStore(
        store_settings(config),
        plans,
        clock,
        metrics=counters,
        on_answered=health.mark_store_answered,
    )
    fallback = ComputeFallback(
        config.data_dir,
        config.symbols,
        config.fallback_refresh_s,
        postgres=config.fallback_postgres(),
    )
    cache = _answer_cache(config, clock)
    serving_log = _serving_log(config, store, clock)
    authorizer = PushAuthorizer(config.push_token, config.push_allowed_clients)
    service = ObservationService(
        store,
        fallback,
        cache,
        clock,
        ServiceSettings.of(config),
        metrics=counters,
        serving_log=serving_log,
        push_authorizer=authorizer,
    )
    # The cache first: the hub's reloads then see the symbol already dropped.
    store.track(CacheInvalidator(cache), service.watch_hub)
    if metrics is not None:
        metrics.read_from(store, fallback, serving_log)
    # Closed in this order at stop, once the port is closed: each stops its own tasks; the
    # served log's last flush and the metrics' last snapshot still have the store.
    parts = [p for p in (service, serving_log, fallback, metrics, store) if p is not None]
    inner = _grpc_server(config, service, health, metrics)
    try:
        port = _bind(inner, config)
    except StartupError:
        for part in parts:
            await part.aclose()
        raise
    url = None if metrics is None else metrics.url
    server = ObservationServer(inner, health, service, store, parts=parts, metrics_url=url)
    for task_owner in (service, serving_log, metrics):
        if task_owner is not None:
            task_owner.start()
    await _start(server, config, store, fallback, health)
    return server, port


def store_settings(config: ServerConfig) -> StoreSettings:
    """The online store's settings, from the server's."""
    return StoreSettings(
        address=config.redis_address,
        timeout_s=config.redis_timeout_s,
        max_clock_skew_ns=int(config.max_clock_skew_s * 1_000_000_000),
        state_events_stream=stream_key(config.project),
        state_events_max_len=config.state_events_max_len,
        breaker_failure_threshold=config.breaker_failure_threshold,
        breaker_open_ms=config.breaker_open_ms,
        invalidation_tracking=config.cache_tracking,
        memory_sample_s=config.redis_memory_sample_s,
    )


def _answer_cache(config: ServerConfig, clock: Clock) -> TtlCache[str, SerializedObservation]:
    """Serialized answers per symbol: TTL-bounded, or held until invalidated while tracking."""
    return TtlCache[str, SerializedObservation](
        config.cache_ttl_ns,
        clock,
        tracked_ttl_ns=config.cache_tracked_ttl_ns,
        max_age_of=lambda answer: answer.store_valid_for_ns,
    )


def _serving_log(config: ServerConfig, store: OnlineStore, clock: Clock) -> ServingLog | None:
    if not config.served_log:
        return None
    return ServingLog(
        store.client,
        served_stream_key(config.project),
        clock,
        stream_max_len=config.served_log_max_len,
        cluster=store.cluster_clients,
    )


async def _start(
    server: ObservationServer,
    config: ServerConfig,
    store: OnlineStore,
    fallback: ComputeFallback,
    health: ServingHealth,
) -> None:
    """Start-up, in order (module docstring): SERVING early when Redis alone can answer, the
    store's tasks, the port, the fallback's first rows, SERVING otherwise, the fallback's
    refresh loop and the health watch."""
    # Not on any request path: a warm Redis connection, and whether Redis alone can answer
    # every served symbol now. If so, SERVING at once: the fallback's first rows are computed
    # once the server is up (below), and a read that needs one before it exists (a view
    # expiring in that fraction of a second) is answered UNAVAILABLE ("the compute fallback is
    # still loading"), never with other data. Otherwise SERVING waits for them.
    await warn_operator(config, store.client, store.plans)
    redis_answered = await store.ping(_STARTUP_PING_TIMEOUT_S)
    if redis_answered and await store.serves_alone(_STARTUP_PING_TIMEOUT_S):
        await health.set_serving()
    await store.start()
    await server.start()
    # The fallback's first rows, after SERVING: their thread (numpy and the builder imported,
    # the files read, ~0.1-0.3 s) no longer delays it, nor competes with it for the GIL.
    # create_server still returns with them (callers and tests rely on that).
    try:
        await fallback.refresh()
    except Exception:  # the server is up: the refresh loop retries, and health tells the rest
        logger.exception("fallback: the first refresh failed")
    if not health.serving:
        if redis_answered or fallback.loaded:
            await health.set_serving()
        else:
            logger.warning("neither Redis nor fallback data is available yet: NOT_SERVING")
    fallback.start()
    health.watch(store, fallback, config.fallback_refresh_s)


def _grpc_server(
    config: ServerConfig,
    service: ObservationService,
    health: ServingHealth,
    metrics: MetricsRuntime | None,
) -> grpc.aio.Server:
    """The gRPC server with the service's handlers (counted and timed as ``grpc_server_*`` when
    metrics are on), ``grpc.health.v1`` and, when configured, reflection; not bound."""
    inner = new_grpc_server(config)
    unary: dict[str, Handler] = {
        "GetObservation": service.get_observation,
        "DescribeObservation": service.describe_observation,
        "PushState": service.push_state,
        "GetObservations": service.get_observations,
    }
    stream: StreamHandler = service.watch_observations
    if metrics is not None:
        instrument = metrics.metrics.instrument
        unary = {method: instrument(SERVICE_NAME, method, h) for method, h in unary.items()}
        stream = metrics.metrics.instrument_stream(SERVICE_NAME, "WatchObservations", stream)
    # No (de)serializers: handlers take and return bytes (see service.py's docstring).
    handlers = {
        method: grpc.unary_unary_rpc_method_handler(handler) for method, handler in unary.items()
    }
    handlers["WatchObservations"] = grpc.unary_stream_rpc_method_handler(stream)
    inner.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    inner.add_registered_method_handlers(SERVICE_NAME, handlers)  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, inner)
    if config.reflection:
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_api.SERVICE_NAME, reflection.SERVICE_NAME), inner
        )
    return inner


def _bind(inner: grpc.aio.Server, config: ServerConfig) -> int:
    """The bound port; StartupError when the address cannot be bound."""
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
        raise StartupError(f"cannot bind {bind}: is the port in use or the address wrong?")
    return int(port)


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
