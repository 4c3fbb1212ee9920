"""The online store of one server process, as one object: reads, writes, health, tracking.

What enters: the store's settings (:class:`StoreSettings`: where Redis listens, the read bound,
the clock skew allowed, the state_events stream), the served read plans, a clock, and the
metrics and health hook the reads report to. What leaves: :class:`OnlineStore`, which owns
every Redis resource of the process and exposes what the service needs:

- ``read(plans, timeout_s, deadline_bound=...)``: the one guarded read
  (``online_store.guarded_read``: breaker, bound, metrics, log) that GetObservation,
  GetObservations and WatchObservations all go through; a read that misses its bound is
  judged apart from the request path (``online_store.health``);
- ``write(...)``: PushState's transaction (``online_store.writer``);
- ``ping``, ``serves_alone`` (start-up and health checks, off the request path);
- ``track(*listeners)``: the cache's and the watch hub's invalidation listeners
  (``online_store.tracking``; no tracker when tracking is off or Redis is a cluster);
- ``client`` / ``cluster_clients``: the ``redis.asyncio`` clients (served log, start-up checks).

Lifecycle: ``start()`` connects the invalidation stream (one bounded attempt) and starts its
task and the ``INFO memory`` sampler; ``aclose()`` stops them and closes every connection, the
timeout judge first (its PING would otherwise use a connection being closed), the tracker last.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from core.clock import Clock
from core.tasks import stop_all
from online_store.address import RedisAddress
from online_store.breaker import CircuitBreaker
from online_store.cluster import ClusterNodeClients
from online_store.errors import StoreError
from online_store.guarded_read import GuardedRead, ReadMetrics
from online_store.health import CONFIRM_TIMEOUT_S, TimeoutJudge
from online_store.memory import MemoryMetrics, run_sampler
from online_store.read_plan import ReadPlan
from online_store.reader import StoreReader, new_cluster_clients
from online_store.tracking import InvalidationListener, InvalidationTracker
from online_store.writer import StateWriter, WriteOutcome

logger = logging.getLogger(__name__)


class StoreMetrics(ReadMetrics, MemoryMetrics, Protocol):
    """What the store reports (the server's metrics implement it)."""


@dataclass(frozen=True)
class StoreSettings:
    """The store's side of the server's settings (built from them once, at start-up)."""

    address: RedisAddress
    timeout_s: float
    """Bound on one request-path read (``redis_timeout_ms``) and the clients' socket timeout."""
    max_clock_skew_ns: int
    """How far in the future a stored ``_ts`` or a pushed event time may be."""
    state_events_stream: bytes
    """PushState's ``state_events`` stream key."""
    state_events_max_len: int
    """Approximate cap of that stream, entries."""
    breaker_failure_threshold: int
    breaker_open_ms: float
    invalidation_tracking: bool
    """Hold answers until Redis reports a write (``CLIENT TRACKING``); single Redis only."""
    memory_sample_s: float
    """Period of the ``INFO memory`` sample (only with metrics on)."""


class OnlineStore:
    """Every Redis resource of one server process (module docstring)."""

    def __init__(
        self,
        settings: StoreSettings,
        plans: Mapping[str, ReadPlan],
        clock: Clock,
        *,
        metrics: StoreMetrics | None = None,
        on_answered: Callable[[], None] = lambda: None,
    ) -> None:
        address = settings.address
        self._settings = settings
        self.plans = plans
        """The served symbols' read plans."""
        self._metrics = metrics
        self.client: Any = address.async_client(settings.timeout_s)
        """The ``redis.asyncio`` client (one Redis; a cluster's first node for its commands)."""
        self.cluster_clients: ClusterNodeClients | None = new_cluster_clients(
            address, settings.timeout_s
        )
        """Per-master clients of a cluster; None for one Redis."""
        reader = StoreReader(
            address,
            plans,
            clock,
            timeout_s=settings.timeout_s,
            max_skew_ns=settings.max_clock_skew_ns,
        )
        self._reader = reader
        self.breaker = CircuitBreaker(
            settings.breaker_failure_threshold, settings.breaker_open_ms, clock
        )
        """The breaker of the guarded read (its state is a metric)."""
        self._judge = TimeoutJudge(reader.ping, self.breaker, CONFIRM_TIMEOUT_S)
        guarded = GuardedRead(
            reader,
            self.breaker,
            metrics=metrics,
            on_answered=on_answered,
            on_timeout=self._judge.suspect,
        )
        # The guarded read itself, not a wrapper: no extra coroutine per request-path read.
        self.read = guarded.read
        """``read(plans, timeout_s, *, deadline_bound=False)``: per plan the store's read, or
        None when the store failed, timed out or the breaker kept the call away."""
        self._writer = StateWriter(
            self.client,
            self.cluster_clients,
            stream=settings.state_events_stream,
            stream_max_len=settings.state_events_max_len,
        )
        self.tracker = _tracker(settings, plans)
        """The invalidation stream (None when tracking is off, or on a cluster)."""
        self._tasks: list[asyncio.Task[None]] = []

    async def write(  # noqa: PLR0913 - one push's fields
        self,
        plan: ReadPlan,
        position: float,
        time_normalized: float,
        event_time_ns: int,
        timeout_s: float,
        *,
        plausible_until_ns: int,
    ) -> WriteOutcome:
        """PushState's transaction (``StateWriter.write``); StoreError when it failed."""
        return await self._writer.write(
            plan,
            position,
            time_normalized,
            event_time_ns,
            timeout_s,
            plausible_until_ns=plausible_until_ns,
        )

    async def ping(self, timeout_s: float) -> bool:
        """True when Redis answered a PING within ``timeout_s`` (never on a request path)."""
        return await self._reader.ping(timeout_s)

    async def serves_alone(self, timeout_s: float) -> bool:
        """True when Redis holds a usable (present, decodable, unexpired) row of every view of
        every served symbol: answers need no fallback row right now (unguarded; start-up)."""
        try:
            reads = await self._reader.read_many(list(self.plans.values()), timeout_s)
        except StoreError:
            return False
        return all(view.values is not None for read in reads for view in read.views)

    def track(self, *listeners: InvalidationListener) -> None:
        """Tell ``listeners``, in this order, of every invalidation (nothing when no tracker)."""
        if self.tracker is not None:
            for listener in listeners:
                self.tracker.add_listener(listener)

    async def start(self) -> None:
        """The invalidation stream (a bounded first attempt, so the first answers may already
        be held long) and the memory sampler, as tasks until ``aclose``."""
        if self.tracker is not None:
            await self.tracker.connect_once()
            self._tasks.append(
                asyncio.create_task(self.tracker.run(), name="invalidation-tracking")
            )
        if self._metrics is not None:
            self._tasks.append(
                asyncio.create_task(
                    run_sampler(self.client, self._metrics, self._settings.memory_sample_s),
                    name="redis-memory",
                )
            )

    async def aclose(self) -> None:
        """Stop the tasks, then close: the judge, the reader, the clients, the tracker."""
        tasks, self._tasks = self._tasks, []
        await stop_all(tasks)
        await self._judge.aclose()
        await self._reader.aclose()
        await self.client.aclose()
        if self.cluster_clients is not None:
            await self.cluster_clients.aclose()
        if self.tracker is not None:
            await self.tracker.aclose()


def _tracker(settings: StoreSettings, plans: Mapping[str, ReadPlan]) -> InvalidationTracker | None:
    if not settings.invalidation_tracking:
        return None
    if settings.address.cluster:
        # One tracking connection per master is not built yet: TTL mode, said once.
        logger.warning("cache invalidation tracking is not supported on redis_cluster: TTL mode")
        return None
    return InvalidationTracker(settings.address, {plan.key: plan.symbol for plan in plans.values()})
