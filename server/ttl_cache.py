"""A per-key TTL cache with single-flight loads, for answers that may be ``ttl`` old.

What enters: a key (the symbol) and a loader coroutine. What leaves: the cached value while it
is younger than the TTL, else the loader's result; concurrent misses for one key share one load.

- Hot path: ``get_fresh(key)`` is a dict lookup and one clock read; no await, no allocation.
- An entry's age counts from when its load *started*, so an answer is never older than the TTL.
- ``invalidate(key)`` drops the entry and detaches any in-flight load: a load that started
  before the invalidation (e.g. before a PushState wrote) finishes for its own waiters but is
  not stored, and later callers start a new one (a generation counter per key).
- A load runs in its own task and callers await it through ``asyncio.shield``: one caller
  cancelled by its deadline does not cancel the load the others are waiting for.
- ``ttl_ns == 0`` disables caching: every call runs its own load inline (no task).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from server.clock import Clock

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class _Entry(Generic[V]):
    expires_at_ns: int
    value: V


class TtlCache(Generic[K, V]):
    """Values per key for ``ttl_ns``; see the module docstring for the guarantees."""

    def __init__(self, ttl_ns: int, clock: Clock) -> None:
        self._ttl_ns = ttl_ns
        self._clock = clock
        self._entries: dict[K, _Entry[V]] = {}
        self._inflight: dict[K, asyncio.Future[V]] = {}
        self._generation: dict[K, int] = {}

    @property
    def enabled(self) -> bool:
        return self._ttl_ns > 0

    def get_fresh(self, key: K) -> V | None:
        """The cached value when younger than the TTL, else None."""
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at_ns > self._clock.monotonic_ns():
            return entry.value
        return None

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        """(value, from_cache): the fresh cached value, or the result of a (shared) load."""
        if self._ttl_ns <= 0:
            return await load(), False
        cached = self.get_fresh(key)
        if cached is not None:
            return cached, True
        future = self._inflight.get(key)
        if future is None:
            # Generation and start time are taken now, not when the task first runs: an
            # invalidate() between the two must still discard this load's result.
            future = asyncio.ensure_future(
                self._load_and_store(
                    key, load, self._generation.get(key, 0), self._clock.monotonic_ns()
                )
            )
            self._inflight[key] = future
            future.add_done_callback(lambda done: self._on_load_done(key, done))
        return await asyncio.shield(future), False

    def invalidate(self, key: K) -> None:
        """Forget ``key``'s value; loads already running are not stored."""
        self._entries.pop(key, None)
        self._inflight.pop(key, None)
        self._generation[key] = self._generation.get(key, 0) + 1

    async def _load_and_store(
        self, key: K, load: Callable[[], Awaitable[V]], generation: int, started_ns: int
    ) -> V:
        value = await load()
        if self._generation.get(key, 0) == generation:
            self._entries[key] = _Entry(started_ns + self._ttl_ns, value)
        return value

    def _on_load_done(self, key: K, future: asyncio.Future[V]) -> None:
        if self._inflight.get(key) is future:
            del self._inflight[key]
        if not future.cancelled():
            future.exception()  # retrieved here so an unawaited failure is not logged as lost
