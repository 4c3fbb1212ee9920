"""The online store package against a real redis-server: one connection layer for reads,
the writer's newer-only rule, the start-up check, the store's errors, and the ``OnlineStore``
facade (its guarded read, tracking listeners and lifecycle).

Each test talks to an embedded redis-server on 127.0.0.1 (devstack), nothing stands in for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from canonical import contract
from core.clock import ManualClock
from devstack.embedded_redis import EmbeddedRedis
from online_store import feast_layout
from online_store.address import RedisAddress
from online_store.errors import StoreError
from online_store.read_plan import read_plans
from online_store.reader import StoreReader
from online_store.startup_check import fatal_store_problem
from online_store.store import OnlineStore, StoreSettings
from online_store.writer import StateWriter

NOW_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z
SYMBOLS = ("USDCOP", "USDMXN")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(password="s3cret") as server:
        yield server


@pytest.fixture
def address(redis_server: EmbeddedRedis) -> Iterator[RedisAddress]:
    address = RedisAddress(redis_server.host, redis_server.port, password="s3cret")
    client = address.connect()
    client.flushall()
    client.close()
    yield address


def _write_row(address: RedisAddress, symbol: str, value: float) -> None:
    mapping: dict[bytes, bytes] = {}
    for feature in contract.FEATURES:
        field = feast_layout.feature_field(feature.view, feature.name)
        mapping[field] = feast_layout.encode_float32(value if feature.name == "rsi_9" else 0.0)
    for view in contract.VIEWS:
        mapping[feast_layout.ts_field(view.name)] = feast_layout.encode_timestamp(NOW_NS)
    client = address.connect()
    client.hset(feast_layout.entity_key(symbol, contract.PROJECT), mapping=mapping)  # type: ignore[arg-type]
    client.close()


def _rsi(read: object) -> float | None:
    for view, view_read in zip(contract.VIEWS, read.views, strict=True):  # type: ignore[attr-defined]
        if "rsi_9" in view.features:
            if view_read.values is None:
                return None
            return float(view_read.values[view.features.index("rsi_9")])
    raise AssertionError("rsi_9 is in no view")


def test_reads_one_symbol_and_several_in_one_round_trip(address: RedisAddress) -> None:
    _write_row(address, "USDCOP", 55.0)
    _write_row(address, "USDMXN", 45.0)
    plans = read_plans(SYMBOLS, contract.PROJECT)

    async def run() -> tuple[object, list[object], bool]:
        reader = StoreReader(address, plans, ManualClock(NOW_NS), timeout_s=1.0)
        try:
            one = await reader.read(plans["USDCOP"], 1.0)
            many = await reader.read_many([plans["USDMXN"], plans["USDCOP"]], 1.0)
            return one, list(many), await reader.ping(1.0)
        finally:
            await reader.aclose()

    one, many, pinged = asyncio.run(run())
    assert _rsi(one) == 55.0
    assert [_rsi(read) for read in many] == [45.0, 55.0]
    assert pinged


def test_an_error_reply_is_a_store_error_and_the_next_read_still_works(
    address: RedisAddress,
) -> None:
    plans = read_plans(("USDCOP",), contract.PROJECT)
    client = address.connect()
    client.set(plans["USDCOP"].key, b"not a hash")  # HMGET now answers WRONGTYPE
    client.close()

    async def run() -> object:
        reader = StoreReader(address, plans, ManualClock(NOW_NS), timeout_s=1.0)
        try:
            with pytest.raises(StoreError):
                await reader.read(plans["USDCOP"], 1.0)
            client = address.connect()
            client.delete(plans["USDCOP"].key)
            client.close()
            _write_row(address, "USDCOP", 60.0)
            return await reader.read(plans["USDCOP"], 1.0)
        finally:
            await reader.aclose()

    assert _rsi(asyncio.run(run())) == 60.0


def test_the_writer_applies_newer_pushes_only(address: RedisAddress) -> None:
    plan = read_plans(("USDCOP",), contract.PROJECT)["USDCOP"]

    async def run() -> tuple[bool, bool, int | None]:
        client = address.async_client(1.0)
        writer = StateWriter(client, stream=b"usdcop_trading:state_events")
        try:
            first = await writer.write(plan, 0.5, 0.25, NOW_NS, 1.0)
            older = await writer.write(plan, -0.5, 0.25, NOW_NS - 1, 1.0)
            return first.applied, older.applied, older.stored_event_time_ns
        finally:
            await client.aclose()

    first, older, stored = asyncio.run(run())
    assert (first, older, stored) == (True, False, NOW_NS)
    client = address.connect()
    assert client.xlen(b"usdcop_trading:state_events") == 1  # only the applied push
    client.close()


def test_the_startup_check_tells_wrong_credentials_from_a_store_that_is_down(
    redis_server: EmbeddedRedis, address: RedisAddress
) -> None:
    wrong = RedisAddress(redis_server.host, redis_server.port, password="wrong")
    problem = asyncio.run(fatal_store_problem(wrong, 1.0))
    assert problem is not None and "FEAST_REDIS_PASSWORD" in problem
    assert asyncio.run(fatal_store_problem(address, 1.0)) is None
    with EmbeddedRedis() as other:
        down = RedisAddress(other.host, other.port)
    assert asyncio.run(fatal_store_problem(down, 1.0)) is None  # down is not fatal


def test_the_password_is_never_in_the_address_repr(address: RedisAddress) -> None:
    assert "s3cret" not in repr(address)


def _store_settings(address: RedisAddress, *, tracking: bool) -> StoreSettings:
    return StoreSettings(
        address=address,
        timeout_s=1.0,
        max_clock_skew_ns=5_000_000_000,
        state_events_stream=b"usdcop_test:state_events",
        state_events_max_len=1000,
        breaker_failure_threshold=3,
        breaker_open_ms=1000.0,
        invalidation_tracking=tracking,
        memory_sample_s=60.0,
    )


class _Listener:
    def __init__(self) -> None:
        self.invalidated: list[str | None] = []
        self.healthy: list[bool] = []
        self.changed = asyncio.Event()

    def on_invalidate(self, symbol: str | None) -> None:
        self.invalidated.append(symbol)
        self.changed.set()

    def on_tracking(self, healthy: bool) -> None:
        self.healthy.append(healthy)


def test_the_store_facade_reads_writes_tracks_and_closes_its_tasks(address: RedisAddress) -> None:
    """OnlineStore: the guarded read, whether Redis alone serves every symbol, PushState's write
    reported to the tracking listeners in order, and one aclose() that ends its tasks."""
    _write_row(address, "USDCOP", 55.0)
    plans = read_plans(SYMBOLS, contract.PROJECT)
    first, second = _Listener(), _Listener()

    async def run() -> tuple[list[float | None], bool, bool, bool]:
        store = OnlineStore(_store_settings(address, tracking=True), plans, ManualClock(NOW_NS))
        store.track(first, second)
        await store.start()
        try:
            reads = await store.read([plans["USDCOP"], plans["USDMXN"]], 1.0)
            alone_before = await store.serves_alone(1.0)
            _write_row(address, "USDMXN", 45.0)
            async with asyncio.timeout(5):
                while "USDMXN" not in second.invalidated:
                    second.changed.clear()
                    await second.changed.wait()
            alone_after = await store.serves_alone(1.0)
            pinged = await store.ping(1.0)
        finally:
            await store.aclose()
        assert store.tracker is not None
        return [_rsi(read) for read in reads], alone_before, alone_after, pinged

    rsis, alone_before, alone_after, pinged = asyncio.run(run())
    assert rsis == [55.0, None]  # USDMXN absent: its views have no values
    assert (alone_before, alone_after, pinged) == (False, True, True)
    assert "USDMXN" in first.invalidated and first.healthy[:1] == [True]


def test_the_store_facade_has_no_tracker_when_tracking_is_off(address: RedisAddress) -> None:
    plans = read_plans(("USDCOP",), contract.PROJECT)

    async def run() -> bool:
        store = OnlineStore(_store_settings(address, tracking=False), plans, ManualClock(NOW_NS))
        store.track(_Listener())
        await store.start()
        await store.aclose()
        return store.tracker is None

    assert asyncio.run(run())
