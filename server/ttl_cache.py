"""A per-key cache with single-flight loads: TTL-bounded, or held until invalidated.

What enters: a key (the symbol) and a loader coroutine; invalidations (one key, or all) and
the state of the invalidation stream (``tracking_up`` / ``tracking_down``). What leaves: the
cached value while it is valid, else the loader's result; concurrent misses for one key share
one load.

- Hot path: ``get_fresh(key)`` is a dict lookup and one clock read; no await, no allocation.
- An entry's age counts from when its load *started*, so an answer is never older than its
  lifetime.
- Lifetime: ``ttl_ns`` (TTL mode). While an invalidation stream is healthy (server-assisted
  client-side caching, ``online_store.tracking``) an entry lives ``tracked_ttl_ns`` instead,
  further capped by ``max_age_of(value)`` (e.g. until a view's own TTL would expire it), but
  only when the stream was already up when its load started: a load that began before
  tracking came up could have missed a write, so it gets the plain TTL.
- ``invalidate(key)`` drops the entry and detaches any in-flight load: a load that started
  before the invalidation (e.g. before a PushState wrote, or before Redis reported a write)
  finishes for its own waiters but is not stored, and later callers start a new one (a
  generation counter per key). ``invalidate_all()`` does that for every key (FLUSHALL, or the
  stream lost: long-lived entries can no longer be trusted).
- A load runs in its own task and callers await it through ``asyncio.shield``: one caller
  cancelled by its deadline does not cancel the load the others are waiting for.
- ``ttl_ns == 0`` disables caching: every call runs its own load inline (no task).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from core.clock import Clock

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class _Entry(Generic[V]):
    expires_at_ns: int
    value: V


@dataclass(frozen=True)
class LoadTicket:
    """What a load must remember from its start to be stored correctly at its end."""

    generation: int
    started_ns: int
    tracking_epoch: int
    """The stream's epoch when the load started; -1 when tracking was down."""


class TtlCache(Generic[K, V]):
    """Values per key; see the module docstring for the guarantees."""

    def __init__(
        self,
        ttl_ns: int,
        clock: Clock,
        *,
        tracked_ttl_ns: int = 0,
        max_age_of: Callable[[V], int | None] | None = None,
    ) -> None:
        self._ttl_ns = ttl_ns
        self._tracked_ttl_ns = max(tracked_ttl_ns, ttl_ns)
        self._max_age_of = max_age_of
        self._clock = clock
        self._entries: dict[K, _Entry[V]] = {}
        self._inflight: dict[K, asyncio.Future[V]] = {}
        self._generation: dict[K, int] = {}
        self._all_generation = 0
        self._tracking_epoch = -1  # -1: no invalidation stream, TTL mode
        self._epochs_started = 0

    @property
    def enabled(self) -> bool:
        return self._ttl_ns > 0

    @property
    def tracking(self) -> bool:
        """True while an invalidation stream keeps entries exact (they may live long)."""
        return self._tracking_epoch >= 0

    def get_fresh(self, key: K) -> V | None:
        """The cached value while valid, else None."""
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at_ns > self._clock.monotonic_ns():
            return entry.value
        return None

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        """(value, from_cache): the valid cached value, or the result of a (shared) load."""
        if self._ttl_ns <= 0:
            return await load(), False
        cached = self.get_fresh(key)
        if cached is not None:
            return cached, True
        future = self._inflight.get(key)
        if future is None:
            # The ticket is taken now, not when the task first runs: an invalidate() between
            # the two must still discard this load's result.
            future = asyncio.ensure_future(self._load_and_store(key, load, self.ticket(key)))
            self._inflight[key] = future
            future.add_done_callback(lambda done: self._on_load_done(key, done))
        return await asyncio.shield(future), False

    def ticket(self, key: K) -> LoadTicket:
        """Take before reading the store; pass to ``put`` with the value read."""
        return LoadTicket(
            self._generation.get(key, 0) + self._all_generation,
            self._clock.monotonic_ns(),
            self._tracking_epoch,
        )

    def put(self, key: K, ticket: LoadTicket, value: V) -> None:
        """Store a value loaded under ``ticket``, unless it was invalidated meanwhile."""
        if self._ttl_ns <= 0:
            return
        if self._generation.get(key, 0) + self._all_generation != ticket.generation:
            return
        lifetime_ns = self._ttl_ns
        if ticket.tracking_epoch >= 0 and ticket.tracking_epoch == self._tracking_epoch:
            lifetime_ns = self._tracked_ttl_ns
            max_age_ns = self._max_age_of(value) if self._max_age_of is not None else None
            if max_age_ns is not None:
                lifetime_ns = max(min(lifetime_ns, max_age_ns), 0)
        self._entries[key] = _Entry(ticket.started_ns + lifetime_ns, value)

    def invalidate(self, key: K) -> None:
        """Forget ``key``'s value; loads already running are not stored."""
        self._entries.pop(key, None)
        self._inflight.pop(key, None)
        self._generation[key] = self._generation.get(key, 0) + 1

    def invalidate_all(self) -> None:
        """Forget every value; loads already running are not stored."""
        self._entries.clear()
        self._inflight.clear()
        self._all_generation += 1

    def tracking_up(self) -> None:
        """An invalidation stream now reports every write: later loads may live long."""
        self._epochs_started += 1
        self._tracking_epoch = self._epochs_started

    def tracking_down(self) -> None:
        """The stream is lost: back to TTL mode, and no long-lived entry survives."""
        self._tracking_epoch = -1
        self.invalidate_all()

    async def _load_and_store(
        self, key: K, load: Callable[[], Awaitable[V]], ticket: LoadTicket
    ) -> V:
        value = await load()
        self.put(key, ticket, value)
        return value

    def _on_load_done(self, key: K, future: asyncio.Future[V]) -> None:
        if self._inflight.get(key) is future:
            del self._inflight[key]
        if not future.cancelled():
            future.exception()  # retrieved here so an unawaited failure is not logged as lost
