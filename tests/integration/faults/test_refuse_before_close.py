"""The last moment before the port closes: once the drain period is over, every new call is
refused with UNAVAILABLE (a code clients retry), whatever the RPC and even on the cache-hit
path, instead of being cancelled by the transport while it waits to start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from usdcop.observation.v1 import observation_pb2 as pb

from devstack.embedded_redis import EmbeddedRedis
from tests.integration.server.conftest import (
    redis_client,
    running,
    server_config,
    write_observation,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SHUTTING_DOWN = "the server is shutting down; retry on another instance"


def test_after_the_drain_new_calls_get_unavailable_on_every_rpc(
    fresh_redis: EmbeddedRedis, data_dir: Path
) -> None:
    write_observation(redis_client(fresh_redis))

    async def scenario() -> list[tuple[str, grpc.StatusCode, str]]:
        async with running(server_config(fresh_redis.port, data_dir)) as app:
            warm = await app.get()  # fills the cache: the next GetObservation would be a hit
            assert len(warm.values) == 15
            assert app.server.service is not None
            app.server.service.refuse_new_calls()
            refused: list[tuple[str, grpc.StatusCode, str]] = []
            calls = {
                "GetObservation": app.get(),
                "GetObservations": app.stub.GetObservations(
                    pb.GetObservationsRequest(symbols=["USDCOP"]), timeout=10
                ),
                "DescribeObservation": app.stub.DescribeObservation(
                    pb.DescribeObservationRequest(), timeout=10
                ),
                "PushState": app.stub.PushState(
                    pb.PushStateRequest(symbol="USDCOP", position=0.0), timeout=10
                ),
            }
            for name, call in calls.items():
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await call
                refused.append((name, raised.value.code(), raised.value.details() or ""))
            stream = app.stub.WatchObservations(
                pb.WatchObservationsRequest(symbols=["USDCOP"]), timeout=10
            )
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stream.read()
            refused.append(("WatchObservations", raised.value.code(), raised.value.details() or ""))
            return refused

    refused = asyncio.run(scenario())
    assert [name for name, _, _ in refused] == [
        "GetObservation",
        "GetObservations",
        "DescribeObservation",
        "PushState",
        "WatchObservations",
    ]
    for name, code, details in refused:
        assert (name, code, details) == (name, grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
