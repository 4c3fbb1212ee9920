"""WatchHub and Subscription: latest-slot semantics, coalesced reloads, the subscriber bound
(no sockets: observations assembled by the real assembly code)."""

from __future__ import annotations

import asyncio

import pytest

from online_store.read_plan import VIEW_LAYOUTS
from online_store.reader import StoreRead, ViewRead
from server.errors import ResourceExhaustedError
from server.observation import SerializedObservation, assemble_observation
from server.watch import HEARTBEAT_MAX_MS, HEARTBEAT_MIN_MS, WatchHub, heartbeat_period_s

pytestmark = pytest.mark.timeout(10)

NOW_NS = 1_765_562_400_000_000_000


def _observation(first_value: float, now_ns: int = NOW_NS) -> SerializedObservation:
    views = []
    for layout in VIEW_LAYOUTS:
        width = layout.feature_slots.stop - layout.feature_slots.start
        values = tuple(first_value + i for i in range(width))
        views.append(ViewRead(values, NOW_NS - 10**9, 0))
    return assemble_observation("USDCOP", StoreRead(tuple(views)), None, now_ns)


def test_slow_consumer_gets_only_the_newest_per_symbol() -> None:
    async def scenario() -> None:
        hub = WatchHub(lambda _s: asyncio.sleep(0, _observation(0.0)), max_subscribers=2,
                       poll_period_s=1.0)  # fmt: skip
        subscription = hub.subscribe(("USDCOP",))
        for value in range(100):  # 100 changes while the consumer is busy
            subscription.offer("USDCOP", _observation(float(value)))
        batch = await subscription.next_batch(0.01)
        assert [o.content for o in batch] == [_observation(99.0).content]
        assert subscription.dropped == 99
        # Same content again (served_at differs): nothing to send, a heartbeat is due.
        subscription.offer("USDCOP", _observation(99.0, NOW_NS + 10**9))
        assert await subscription.next_batch(0.01) == []

    asyncio.run(scenario())


def test_reloads_coalesce_and_reach_every_subscriber() -> None:
    async def scenario() -> None:
        loads = 0
        gate = asyncio.Event()

        async def load(_symbol: str) -> SerializedObservation:
            nonlocal loads
            loads += 1
            value = float(loads)
            await gate.wait()
            return _observation(value)

        hub = WatchHub(load, max_subscribers=3, poll_period_s=1.0)
        hub.on_tracking(True)
        subscribers = [hub.subscribe(("USDCOP",)) for _ in range(3)]
        hub.on_invalidate("USDCOP")
        await asyncio.sleep(0)  # the reload is running (waiting on Redis, say)
        for _ in range(10):  # ten more invalidations meanwhile
            hub.on_invalidate("USDCOP")
        gate.set()
        for subscriber in subscribers:
            batch = await subscriber.next_batch(1.0)
            assert len(batch) == 1
        await asyncio.sleep(0.01)
        assert loads == 2  # the running reload, then one more for all that came during it
        with pytest.raises(ResourceExhaustedError):
            hub.subscribe(("USDCOP",))
        subscribers[0].close()
        assert hub.subscribers == 2
        hub.subscribe(("USDCOP",))
        hub.on_invalidate("EURUSD")  # nobody watches it: no reload
        await asyncio.sleep(0.01)
        assert loads == 2
        await hub.aclose()

    asyncio.run(scenario())


def test_heartbeat_period_default_and_clamp() -> None:
    assert heartbeat_period_s(0, 5000.0) == 5.0
    assert heartbeat_period_s(1, 5000.0) == HEARTBEAT_MIN_MS / 1000
    assert heartbeat_period_s(10**9, 5000.0) == HEARTBEAT_MAX_MS / 1000
    assert heartbeat_period_s(250, 5000.0) == 0.25


def test_the_hub_owns_its_poll_loop_and_reloads_nothing_once_closed() -> None:
    async def scenario() -> int:
        loads = 0

        async def load(_symbol: str) -> SerializedObservation:
            nonlocal loads
            loads += 1
            return _observation(float(loads))

        hub = WatchHub(load, max_subscribers=2, poll_period_s=0.01)
        subscription = hub.subscribe(("USDCOP",))
        hub.start()  # tracking down: the poll loop reloads every watched symbol
        while loads < 2:
            await asyncio.sleep(0.01)
        await hub.aclose()
        closed_at = loads
        hub.on_invalidate("USDCOP")  # the invalidation stream outlives the hub at shutdown
        await asyncio.sleep(0.05)
        subscription.close()
        return loads - closed_at

    assert asyncio.run(scenario()) == 0
