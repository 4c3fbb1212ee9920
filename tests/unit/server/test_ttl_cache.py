"""TtlCache: TTL, single-flight, invalidation races (an injectable clock; no sockets)."""

from __future__ import annotations

import asyncio

import pytest

from server.clock import ManualClock
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
