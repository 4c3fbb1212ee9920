"""GetObservations and WatchObservations against a real redis-server, a real server on port 0
and a real grpc.aio channel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from usdcop.observation.v1 import observation_pb2 as pb

from devstack.embedded_redis import EmbeddedRedis
from tests.integration.server.conftest import (
    STORE_VALUES,
    Running,
    redis_client,
    running,
    server_config,
    write_observation,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

OTHER_VALUES = tuple(v / 2 for v in STORE_VALUES)  # within the contract's valid ranges
CHANGED = tuple(v * 2 for v in STORE_VALUES)
STORE = pb.VALUE_SOURCE_ONLINE_STORE
FALLBACK = pb.VALUE_SOURCE_COMPUTE_FALLBACK


async def _batch(app: Running, symbols: list[str]) -> pb.GetObservationsResponse:
    return await app.stub.GetObservations(pb.GetObservationsRequest(symbols=symbols), timeout=10)


def test_batch_answers_each_symbol_in_order_with_its_own_errors(
    fresh_redis: EmbeddedRedis, data_dir: Path
) -> None:
    client = redis_client(fresh_redis)
    write_observation(client)
    write_observation(client, OTHER_VALUES, symbol="EURUSD")

    async def scenario() -> None:
        config = server_config(fresh_redis.port, data_dir, symbols=("USDCOP", "EURUSD", "GBPUSD"))
        async with running(config) as app:
            asked = ["USDCOP", "bad!", "XXX", "EURUSD", "USDCOP", "GBPUSD"]
            answer = await _batch(app, asked)
            assert [r.symbol for r in answer.results] == asked
            kinds = [r.WhichOneof("result") for r in answer.results]
            assert kinds == ["observation", "error", "error", "observation", "observation", "error"]
            assert list(answer.results[0].observation.values) == list(STORE_VALUES)
            assert list(answer.results[3].observation.values) == list(OTHER_VALUES)
            assert list(answer.results[4].observation.values) == list(STORE_VALUES)
            assert not answer.results[0].observation.from_cache
            assert answer.results[0].observation.views[0].source == STORE
            assert answer.results[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
            assert "symbol" in answer.results[1].error.message
            assert answer.results[2].error.code == grpc.StatusCode.NOT_FOUND.value[0]
            assert "XXX" in answer.results[2].error.message
            # GBPUSD is served but has neither a store entry nor fallback rows.
            assert answer.results[5].error.code == grpc.StatusCode.UNAVAILABLE.value[0]

            # The batch filled the cache: the next call and GetObservation hit it.
            again = await _batch(app, ["EURUSD", "USDCOP"])
            assert [r.observation.from_cache for r in again.results] == [True, True]
            assert (await app.get("EURUSD")).from_cache

            # Invalidated by a write like any entry.
            write_observation(client, CHANGED)
            for _ in range(500):
                fresh = await _batch(app, ["USDCOP"])
                if list(fresh.results[0].observation.values) == list(CHANGED):
                    break
                await asyncio.sleep(0.005)
            assert list(fresh.results[0].observation.values) == list(CHANGED)

    asyncio.run(scenario())


def test_batch_bounds_and_malformed_requests(fresh_redis: EmbeddedRedis, data_dir: Path) -> None:
    async def scenario() -> None:
        config = server_config(fresh_redis.port, data_dir, batch_max_symbols=3)
        async with running(config) as app:
            for symbols, fragment in (([], "at least one"), (["USDCOP"] * 4, "at most 3")):
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await _batch(app, symbols)
                assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert fragment in (raised.value.details() or "")
            method = app.channel.unary_unary(
                "/usdcop.observation.v1.ObservationService/GetObservations"
            )
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await method(b"\xff\xff", timeout=5)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(scenario())


def test_batch_with_redis_down_answers_from_the_fallback(closed_port: int, data_dir: Path) -> None:
    async def scenario() -> None:
        async with running(server_config(closed_port, data_dir, redis_timeout_ms=50.0)) as app:
            answer = await _batch(app, ["USDCOP", "USDCOP"])
            for result in answer.results:
                assert [v.source for v in result.observation.views] == [FALLBACK] * 3
                assert result.observation.views[0].fallback_reason == (
                    pb.FALLBACK_REASON_STORE_UNAVAILABLE
                )

    asyncio.run(scenario())


async def _observations(
    stream: AsyncIterator[pb.WatchObservationsResponse], count: int
) -> tuple[list[pb.Observation], int]:
    """The next ``count`` observations of a stream, and how many heartbeats came between."""
    found: list[pb.Observation] = []
    heartbeats = 0
    async for message in stream:
        if message.WhichOneof("event") == "heartbeat":
            heartbeats += 1
            continue
        found.append(message.observation)
        if len(found) == count:
            break
    return found, heartbeats


def test_watch_sends_current_then_each_change_and_heartbeats(
    fresh_redis: EmbeddedRedis, data_dir: Path
) -> None:
    client = redis_client(fresh_redis)
    write_observation(client)
    write_observation(client, OTHER_VALUES, symbol="EURUSD")

    async def scenario() -> None:
        config = server_config(fresh_redis.port, data_dir, symbols=("USDCOP", "EURUSD"))
        async with running(config) as app:
            call = app.stub.WatchObservations(
                pb.WatchObservationsRequest(
                    symbols=["USDCOP", "EURUSD", "USDCOP"], heartbeat_interval_ms=100
                ),
                timeout=30,
            )
            stream = call.__aiter__()
            first, _ = await _observations(stream, 2)
            assert {o.symbol: list(o.values) for o in first} == {
                "USDCOP": list(STORE_VALUES),
                "EURUSD": list(OTHER_VALUES),
            }
            # Quiet: heartbeats only.
            message = await stream.__anext__()
            assert message.WhichOneof("event") == "heartbeat"
            assert message.heartbeat.sent_at.seconds > 0

            write_observation(client, CHANGED)  # clock not advanced: pushed by invalidation
            changed, _ = await _observations(stream, 1)
            assert changed[0].symbol == "USDCOP" and list(changed[0].values) == list(CHANGED)

            # A write that changes nothing sends nothing: only heartbeats follow.
            write_observation(client, CHANGED)
            for _ in range(3):
                message = await stream.__anext__()
                assert message.WhichOneof("event") == "heartbeat"
            call.cancel()
        assert app.server  # stopped cleanly with the stream cancelled

    asyncio.run(scenario())


def test_watch_validates_before_sending_and_bounds_subscribers(
    fresh_redis: EmbeddedRedis, data_dir: Path
) -> None:
    write_observation(redis_client(fresh_redis))

    async def scenario() -> None:
        config = server_config(fresh_redis.port, data_dir, watch_max_subscribers=1)
        async with running(config) as app:
            for symbols, code in (
                ([], grpc.StatusCode.INVALID_ARGUMENT),
                (["USDCOP", "bad!"], grpc.StatusCode.INVALID_ARGUMENT),
                (["USDCOP", "XXX"], grpc.StatusCode.NOT_FOUND),
            ):
                call = app.stub.WatchObservations(
                    pb.WatchObservationsRequest(symbols=symbols), timeout=10
                )
                received = []
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    async for message in call:
                        received.append(message)
                assert raised.value.code() == code
                assert received == []

            first = app.stub.WatchObservations(
                pb.WatchObservationsRequest(symbols=["USDCOP"]), timeout=10
            )
            assert (await first.__aiter__().__anext__()).observation.symbol == "USDCOP"
            second = app.stub.WatchObservations(
                pb.WatchObservationsRequest(symbols=["USDCOP"]), timeout=10
            )
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                async for _ in second:
                    pass
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            first.cancel()
            # The slot is released when a stream ends.
            for _ in range(200):
                if app.server is not None and _hub_count(app) == 0:
                    break
                await asyncio.sleep(0.01)
            third = app.stub.WatchObservations(
                pb.WatchObservationsRequest(symbols=["USDCOP"]), timeout=10
            )
            assert (await third.__aiter__().__anext__()).observation.symbol == "USDCOP"
            third.cancel()

    asyncio.run(scenario())


def _hub_count(app: Running) -> int:
    assert app.server.watch_hub is not None
    return app.server.watch_hub.subscribers
