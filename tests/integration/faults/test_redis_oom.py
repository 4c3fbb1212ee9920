"""Redis at maxmemory with the noeviction policy refuses writes: PushState answers
RESOURCE_EXHAUSTED naming the cause (not UNAVAILABLE, which clients would retry in vain), the
log line says OOM, reads still work, and pushes apply again once memory is freed. A real
redis-server at a tiny maxmemory, a real server on port 0, a real channel."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from usdcop.observation.v1 import observation_pb2 as pb

from devstack.embedded_redis import EmbeddedRedis
from tests.integration.server.conftest import (
    NOW_NS,
    SECOND_NS,
    redis_client,
    running,
    server_config,
    write_observation,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

OOM_MESSAGE = (
    "the online store is out of memory (Redis maxmemory reached, policy noeviction); "
    "nothing was written"
)


def _push(position: float, offset_s: int) -> pb.PushStateRequest:
    return pb.PushStateRequest(
        symbol="USDCOP",
        position=position,
        event_time=Timestamp(seconds=NOW_NS // SECOND_NS + offset_s),
    )


def test_push_to_a_full_redis_is_resource_exhausted(
    fresh_redis: EmbeddedRedis, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis_client(fresh_redis)
    write_observation(client)
    baseline = int(client.info("memory")["used_memory"])
    client.set("ballast", b"x" * 4_000_000)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", str(baseline + 1_000_000))  # below what is used now

    async def scenario() -> None:
        async with running(server_config(fresh_redis.port, data_dir, cache_ttl_ms=0.0)) as app:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await app.stub.PushState(_push(0.5, 0), timeout=10)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert refused.value.details() == OOM_MESSAGE
            assert len((await app.get()).values) == 15  # reads are not refused

            client.delete("ballast")  # an operator frees memory and lifts the limit
            client.config_set("maxmemory", "0")
            answer = await app.stub.PushState(_push(0.5, 1), timeout=10)
            assert answer.applied is True

    with caplog.at_level(logging.WARNING, logger="server"):
        asyncio.run(scenario())
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("server")]
    assert f"call failed: RESOURCE_EXHAUSTED {OOM_MESSAGE}" in logged, logged
