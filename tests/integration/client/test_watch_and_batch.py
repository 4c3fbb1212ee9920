"""get_many and watch (sync generator and async iterator) against the real server, a real
redis-server and real channels; watch survives a server restart and resumes."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis

from canonical import contract
from client import AsyncObservationClient, BatchError, ObservationClient, ObservationRpcError
from devstack.embedded_redis import EmbeddedRedis
from online_store import feast_layout
from tests.integration.client.conftest import (
    PROJECT,
    STORE_VALUES,
    ServerThread,
    client_server_config,
    write_store_observation,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
POSITION = contract.FEATURE_INDEX["position"]


def _set_position(server: EmbeddedRedis, value: float) -> None:
    """Another writer changes the stored position (not through the server)."""
    client = redis.Redis(host=server.host, port=server.port)
    try:
        client.hset(
            feast_layout.entity_key("USDCOP", PROJECT),
            feast_layout.feature_field("state_features", "position"),
            feast_layout.encode_float32(value),
        )
    finally:
        client.close()


def test_get_many_sync_and_async(real_server: ServerThread) -> None:
    with ObservationClient(real_server.target) as obs:
        answers = obs.get_many(["USDCOP", "XXX", "USDCOP"])
        with pytest.raises(TypeError):
            obs.get_many("USDCOP")  # type: ignore[arg-type]
    assert [getattr(a, "symbol", None) for a in answers] == ["USDCOP", "XXX", "USDCOP"]
    first, missing, again = answers
    assert not isinstance(first, BatchError) and not isinstance(again, BatchError)
    assert first.values.tolist() == np.asarray(STORE_VALUES, dtype=np.float32).tolist()
    assert isinstance(missing, BatchError) and missing.code == grpc.StatusCode.NOT_FOUND

    async def scenario() -> None:
        async with AsyncObservationClient(real_server.target) as obs:
            results = await obs.get_many(["USDCOP"])
            assert not isinstance(results[0], BatchError)
            assert results[0].from_cache  # cached by the sync call
            with pytest.raises(ObservationRpcError) as raised:
                await obs.get_many([])
            assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(scenario())


def test_sync_watch_gets_changes_and_resumes_after_a_restart(
    redis_server: EmbeddedRedis, raw_data_dir: Path
) -> None:
    write_store_observation(redis_server)
    real_server = ServerThread(client_server_config(redis_server, raw_data_dir)).start()
    received: list[float] = []
    got = threading.Condition()
    stop = threading.Event()
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            with ObservationClient(real_server.target) as obs:
                for result in obs.watch(["USDCOP"], heartbeat_s=0.1):
                    with got:
                        received.append(float(result.values[POSITION]))
                        got.notify_all()
                    if stop.is_set():
                        return
        except BaseException as error:  # reported to the test thread
            errors.append(error)

    def wait_for(count: int) -> None:
        with got:
            assert got.wait_for(lambda: len(received) >= count or errors, timeout=15)
        assert not errors, errors

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    wait_for(1)
    assert received == [pytest.approx(STORE_VALUES[POSITION])]
    _set_position(redis_server, 0.25)
    wait_for(2)
    assert received[1] == 0.25

    # The server goes away; meanwhile the position changes; a new server on the same port.
    port = real_server.port
    real_server.stop()
    _set_position(redis_server, -0.75)
    restarted = ServerThread(client_server_config(redis_server, raw_data_dir, port=port)).start()
    try:
        wait_for(3)
        assert received[2] == -0.75  # resumed: the change made during the outage
        stop.set()
        _set_position(redis_server, 0.5)  # one more message lets the consumer see stop
        consumer.join(15)
        assert not consumer.is_alive()
        assert received[:3] == [pytest.approx(STORE_VALUES[POSITION]), 0.25, -0.75]
    finally:
        restarted.stop()


def test_async_watch_changes_and_errors(
    redis_server: EmbeddedRedis, real_server: ServerThread
) -> None:
    async def scenario() -> None:
        async with AsyncObservationClient(real_server.target) as obs:
            stream = obs.watch(["USDCOP"], heartbeat_s=0.1)
            first = await stream.__anext__()
            assert first.symbol == "USDCOP"
            _set_position(redis_server, -0.5)
            second = await asyncio.wait_for(stream.__anext__(), 10)
            assert float(second.values[POSITION]) == -0.5
            await stream.aclose()  # type: ignore[attr-defined]

            with pytest.raises(ObservationRpcError) as raised:
                async for _ in obs.watch(["bad!"]):
                    pass
            assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(scenario())
