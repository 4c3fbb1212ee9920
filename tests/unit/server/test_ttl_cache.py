"""TtlCache: TTL, single-flight, invalidation races (an injectable clock; no sockets)."""

from __future__ import annotations

import asyncio

import pytest

from core.clock import ManualClock
from server.ttl_cache import TtlCache

pytestmark = pytest.mark.timeout(10)


class CountingLoader:
    def __init__(self) -> None:
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> str:
        self.calls += 1
        value = f"v{self.calls}"
        if self.gate is not None:
            await self.gate.wait()
        return value


def test_hit_within_ttl_and_reload_after() -> None:
    async def scenario() -> None:
        clock = ManualClock(wall_ns=0)
        cache: TtlCache[str, str] = TtlCache(ttl_ns=1_000_000_000, clock=clock)
        load = CountingLoader()
        assert await cache.get_or_load("USDCOP", load) == ("v1", False)
        clock.advance(0.999)
        assert cache.get_fresh("USDCOP") == "v1"
        assert await cache.get_or_load("USDCOP", load) == ("v1", True)
        clock.advance(0.001)  # exactly the TTL: expired
        assert cache.get_fresh("USDCOP") is None
        assert await cache.get_or_load("USDCOP", load) == ("v2", False)
        assert load.calls == 2

    asyncio.run(scenario())


def test_concurrent_misses_share_one_load() -> None:
    async def scenario() -> None:
        cache: TtlCache[str, str] = TtlCache(ttl_ns=10**9, clock=ManualClock(wall_ns=0))
        load = CountingLoader()
        load.gate = asyncio.Event()
        waiters = [asyncio.ensure_future(cache.get_or_load("USDCOP", load)) for _ in range(20)]
        await asyncio.sleep(0)
        load.gate.set()
        results = await asyncio.gather(*waiters)
        assert load.calls == 1
        assert results == [("v1", False)] * 20

    asyncio.run(scenario())


def test_cancelled_waiter_does_not_cancel_the_shared_load() -> None:
    async def scenario() -> None:
        cache: TtlCache[str, str] = TtlCache(ttl_ns=10**9, clock=ManualClock(wall_ns=0))
        load = CountingLoader()
        load.gate = asyncio.Event()
        first = asyncio.ensure_future(cache.get_or_load("USDCOP", load))
        second = asyncio.ensure_future(cache.get_or_load("USDCOP", load))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        load.gate.set()
        assert await second == ("v1", False)
        assert cache.get_fresh("USDCOP") == "v1"
        assert first.cancelled()

    asyncio.run(scenario())


def test_invalidate_during_load_discards_its_result() -> None:
    async def scenario() -> None:
        cache: TtlCache[str, str] = TtlCache(ttl_ns=10**9, clock=ManualClock(wall_ns=0))
        load = CountingLoader()
        load.gate = asyncio.Event()
        before = asyncio.ensure_future(cache.get_or_load("USDCOP", load))
        await asyncio.sleep(0)
        cache.invalidate("USDCOP")  # e.g. a PushState wrote while the read was in flight
        after = asyncio.ensure_future(cache.get_or_load("USDCOP", load))
        await asyncio.sleep(0)
        load.gate.set()
        assert await before == ("v1", False)
        assert await after == ("v2", False)  # a new read, not the stale in-flight one
        assert cache.get_fresh("USDCOP") == "v2"

    asyncio.run(scenario())


def test_failed_load_is_not_cached() -> None:
    async def scenario() -> None:
        cache: TtlCache[str, str] = TtlCache(ttl_ns=10**9, clock=ManualClock(wall_ns=0))

        async def failing() -> str:
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await cache.get_or_load("USDCOP", failing)
        assert cache.get_fresh("USDCOP") is None
        assert await cache.get_or_load("USDCOP", CountingLoader()) == ("v1", False)

    asyncio.run(scenario())


def test_ttl_zero_disables_caching() -> None:
    async def scenario() -> None:
        cache: TtlCache[str, str] = TtlCache(ttl_ns=0, clock=ManualClock(wall_ns=0))
        load = CountingLoader()
        assert not cache.enabled
        assert await cache.get_or_load("USDCOP", load) == ("v1", False)
        assert await cache.get_or_load("USDCOP", load) == ("v2", False)
        assert cache.get_fresh("USDCOP") is None

    asyncio.run(scenario())


def _tracked_cache(clock: ManualClock, max_age: int | None = None) -> TtlCache[str, str]:
    return TtlCache(
        ttl_ns=10**9, clock=clock, tracked_ttl_ns=60 * 10**9, max_age_of=lambda _value: max_age
    )


def test_tracked_entries_live_long_until_invalidated() -> None:
    async def scenario() -> None:
        clock = ManualClock(wall_ns=0)
        cache = _tracked_cache(clock)
        cache.tracking_up()
        load = CountingLoader()
        assert await cache.get_or_load("USDCOP", load) == ("v1", False)
        clock.advance(59.999)  # far past the plain TTL, within the tracked one
        assert cache.get_fresh("USDCOP") == "v1"
        cache.invalidate("USDCOP")
        assert cache.get_fresh("USDCOP") is None
        assert await cache.get_or_load("USDCOP", load) == ("v2", False)
        clock.advance(60.0)  # the tracked lifetime bounds it too
        assert cache.get_fresh("USDCOP") is None

    asyncio.run(scenario())


def test_tracked_lifetime_capped_by_the_value() -> None:
    async def scenario() -> None:
        clock = ManualClock(wall_ns=0)
        cache = _tracked_cache(clock, max_age=5 * 10**9)  # e.g. a view expires in 5 s
        cache.tracking_up()
        await cache.get_or_load("USDCOP", CountingLoader())
        clock.advance(4.999)
        assert cache.get_fresh("USDCOP") == "v1"
        clock.advance(0.001)
        assert cache.get_fresh("USDCOP") is None

    asyncio.run(scenario())


def test_load_started_before_tracking_came_up_gets_the_plain_ttl() -> None:
    async def scenario() -> None:
        clock = ManualClock(wall_ns=0)
        cache = _tracked_cache(clock)
        load = CountingLoader()
        load.gate = asyncio.Event()
        started = asyncio.ensure_future(cache.get_or_load("USDCOP", load))
        await asyncio.sleep(0)
        cache.tracking_up()  # a write before this point may never be reported
        load.gate.set()
        assert await started == ("v1", False)
        clock.advance(0.999)
        assert cache.get_fresh("USDCOP") == "v1"
        clock.advance(0.001)
        assert cache.get_fresh("USDCOP") is None

    asyncio.run(scenario())


def test_tracking_lost_drops_long_entries_and_discards_running_loads() -> None:
    async def scenario() -> None:
        clock = ManualClock(wall_ns=0)
        cache = _tracked_cache(clock)
        cache.tracking_up()
        load = CountingLoader()
        await cache.get_or_load("USDCOP", load)
        load.gate = asyncio.Event()
        running = asyncio.ensure_future(cache.get_or_load("EURUSD", load))
        await asyncio.sleep(0)
        cache.tracking_down()
        load.gate.set()
        assert await running == ("v2", False)
        assert cache.get_fresh("USDCOP") is None
        assert cache.get_fresh("EURUSD") is None
        assert not cache.tracking
        # TTL mode again: the plain TTL
        load.gate = None
        assert await cache.get_or_load("USDCOP", load) == ("v3", False)
        clock.advance(1.0)
        assert cache.get_fresh("USDCOP") is None

    asyncio.run(scenario())


def test_invalidate_all_discards_every_key() -> None:
    async def scenario() -> None:
        clock = ManualClock(wall_ns=0)
        cache = _tracked_cache(clock)
        cache.tracking_up()
        load = CountingLoader()
        await cache.get_or_load("A", load)
        await cache.get_or_load("B", load)
        ticket = cache.ticket("A")
        cache.invalidate_all()  # FLUSHALL
        cache.put("A", ticket, "stale")
        assert cache.get_fresh("A") is None
        assert cache.get_fresh("B") is None

    asyncio.run(scenario())
