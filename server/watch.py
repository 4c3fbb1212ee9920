"""WatchObservations' fan-out: subscribers per symbol, each with a "latest" slot per symbol.

What enters: subscriptions (symbols), invalidations from ``online_store.tracking`` (a symbol was
written, or everything was flushed) and the stream's health. What leaves: for every
subscriber, the newest observation of each of its symbols that it has not been sent yet.

- On an invalidation of a watched symbol the hub reloads it once (through the cache's shared
  load, which also refreshes the cache in the background) and offers the answer to every
  subscriber of that symbol. Invalidations that arrive during a reload mark the symbol dirty
  and cause one more reload after it: never more than one reload per symbol at a time.
- A subscriber keeps one slot per symbol: an offer overwrites what is still unsent, so a slow
  consumer gets only the newest observation per symbol and memory per subscriber is bounded
  (no queue). An offer whose content (values and per-view provenance) equals the last one
  sent to that subscriber is dropped: a write that changes nothing sends nothing.
- While the invalidation stream is down the hub polls every watched symbol every
  ``poll_period_s`` (the cache TTL): changes still arrive, within the TTL, never silently
  missed; when the stream comes back every watched symbol is reloaded once.
- At most ``max_subscribers`` subscriptions per process: ResourceExhaustedError beyond.
- At shutdown, once the drain is over, ``end_all`` ends every stream (ShuttingDownError:
  UNAVAILABLE, which the clients' watch reconnects elsewhere): open streams never hold the
  process for its whole grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from core.tasks import stop_all
from server.errors import ResourceExhaustedError, ServerError, ShuttingDownError
from server.observation import SerializedObservation

logger = logging.getLogger(__name__)

HEARTBEAT_MIN_MS = 50
HEARTBEAT_MAX_MS = 60_000


def heartbeat_period_s(requested_ms: int, default_ms: float) -> float:
    """The heartbeat period a stream gets: the default for 0, else clamped to the range."""
    chosen = default_ms if requested_ms == 0 else requested_ms
    return min(max(chosen, HEARTBEAT_MIN_MS), HEARTBEAT_MAX_MS) / 1000.0


class Subscription:
    """One stream's slots: the newest unsent observation per symbol."""

    def __init__(self, hub: WatchHub, symbols: tuple[str, ...]) -> None:
        self.symbols = symbols
        self._hub = hub
        self._pending: dict[str, SerializedObservation] = {}
        self._sent_content: dict[str, bytes] = {}
        self._ready = asyncio.Event()
        self._ended = False
        self.dropped = 0
        """Offers overwritten before they were sent (the consumer was slower)."""

    def offer(self, symbol: str, observation: SerializedObservation) -> None:
        """Put ``observation`` in the symbol's slot unless the subscriber already has it."""
        if self._sent_content.get(symbol) == observation.content:
            self._pending.pop(symbol, None)
            return
        if symbol in self._pending:
            self.dropped += 1
        self._pending[symbol] = observation
        self._ready.set()

    def end(self) -> None:
        """End the stream: its next (or pending) ``next_batch`` raises ShuttingDownError."""
        self._ended = True
        self._ready.set()

    async def next_batch(self, timeout_s: float) -> list[SerializedObservation]:
        """Every pending observation (taken from the slots), or [] after ``timeout_s`` quiet;
        ShuttingDownError once the stream was ended."""
        if not self._pending and not self._ended:
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._ready.wait()
        if self._ended:
            raise ShuttingDownError()
        batch = list(self._pending.items())
        self._pending.clear()
        for symbol, observation in batch:
            self._sent_content[symbol] = observation.content
        return [observation for _, observation in batch]

    def close(self) -> None:
        self._hub.unsubscribe(self)


class WatchHub:
    """Subscribers per process; an ``InvalidationListener`` (see ``online_store.tracking``)."""

    def __init__(
        self,
        load: Callable[[str], Awaitable[SerializedObservation]],
        *,
        max_subscribers: int,
        poll_period_s: float,
    ) -> None:
        self._load = load
        self._max_subscribers = max_subscribers
        self._poll_period_s = poll_period_s
        self._by_symbol: dict[str, set[Subscription]] = {}
        self._count = 0
        self._reloading: set[str] = set()
        self._dirty: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._tracking = False
        self._tracking_changed = asyncio.Event()
        self._poll_task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def subscribers(self) -> int:
        return self._count

    def subscribe(self, symbols: tuple[str, ...]) -> Subscription:
        """A new subscription (symbols already validated); ResourceExhaustedError at the bound."""
        if self._count >= self._max_subscribers:
            raise ResourceExhaustedError(
                f"this server already serves its maximum of {self._max_subscribers} "
                "WatchObservations streams; retry later or elsewhere"
            )
        subscription = Subscription(self, symbols)
        self._count += 1
        for symbol in symbols:
            self._by_symbol.setdefault(symbol, set()).add(subscription)
        return subscription

    def end_all(self) -> None:
        """End every open stream (shutdown, after the drain)."""
        ended: set[Subscription] = set()
        for subscribers in self._by_symbol.values():
            ended |= subscribers
        for subscription in ended:
            subscription.end()

    def unsubscribe(self, subscription: Subscription) -> None:
        removed = False
        for symbol in subscription.symbols:
            subscribers = self._by_symbol.get(symbol)
            if subscribers is not None and subscription in subscribers:
                subscribers.discard(subscription)
                removed = True
                if not subscribers:
                    del self._by_symbol[symbol]
        if removed:
            self._count -= 1

    async def current(self, subscription: Subscription) -> None:
        """Offer the current observation of each of the subscription's symbols (raises the
        first symbol's error when none can be made)."""
        for symbol in subscription.symbols:
            subscription.offer(symbol, await self._load(symbol))

    # --- InvalidationListener -------------------------------------------------------------

    def on_invalidate(self, symbol: str | None) -> None:
        symbols = list(self._by_symbol) if symbol is None else [symbol]
        for name in symbols:
            if name in self._by_symbol:
                self._schedule_reload(name)

    def on_tracking(self, healthy: bool) -> None:
        self._tracking = healthy
        self._tracking_changed.set()
        if healthy:  # writes during the gap were not reported: look once
            for name in list(self._by_symbol):
                self._schedule_reload(name)

    # --- reloads ---------------------------------------------------------------------------

    async def run_poll_loop(self) -> None:
        """While the invalidation stream is down, reload every watched symbol each period."""
        while True:
            if self._tracking:
                self._tracking_changed.clear()
                await self._tracking_changed.wait()
                continue
            await asyncio.sleep(self._poll_period_s)
            if not self._tracking:
                for name in list(self._by_symbol):
                    self._schedule_reload(name)

    def start(self) -> None:
        """``run_poll_loop`` as a task until ``aclose``."""
        if self._poll_task is None:
            self._poll_task = asyncio.create_task(self.run_poll_loop(), name="watch-poll")

    async def aclose(self) -> None:
        """Stop the poll loop and every reload in progress; later invalidations reload nothing
        (the store's invalidation stream is closed after the hub)."""
        self._closed = True
        tasks = list(self._tasks)
        if self._poll_task is not None:
            tasks.insert(0, self._poll_task)
            self._poll_task = None
        await stop_all(tasks)

    def _schedule_reload(self, symbol: str) -> None:
        if self._closed:
            return
        if symbol in self._reloading:
            self._dirty.add(symbol)
            return
        self._reloading.add(symbol)
        task = asyncio.ensure_future(self._reload(symbol))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload(self, symbol: str) -> None:
        try:
            while True:
                self._dirty.discard(symbol)
                try:
                    observation = await self._load(symbol)
                except ServerError as exc:
                    logger.debug("watch reload of %s failed: %s", symbol, exc.public_message)
                else:
                    for subscription in list(self._by_symbol.get(symbol, ())):
                        subscription.offer(symbol, observation)
                if symbol not in self._dirty:
                    return
        finally:
            self._reloading.discard(symbol)
