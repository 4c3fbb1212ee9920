"""Out-of-range input: PushState's event-time window (INVALID_ARGUMENT, nothing written) and
the read side's plausibility rules (a future ``_ts`` or out-of-range values -> the fallback,
with their own reasons). Real redis-server, real server on port 0, real channel."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from usdcop.observation.v1 import observation_pb2 as pb

from canonical import contract
from devstack.embedded_redis import EmbeddedRedis
from online_store import feast_layout
from tests.integration.server.conftest import (
    NOW_NS,
    SECOND_NS,
    STORE_VALUES,
    redis_client,
    running,
    server_config,
    write_observation,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

KEY = feast_layout.entity_key("USDCOP", contract.PROJECT)
STORE = pb.VALUE_SOURCE_ONLINE_STORE
FALLBACK = pb.VALUE_SOURCE_COMPUTE_FALLBACK


def _push(seconds: int, nanos: int = 0, position: float = 0.5) -> pb.PushStateRequest:
    return pb.PushStateRequest(
        symbol="USDCOP", position=position, event_time=Timestamp(seconds=seconds, nanos=nanos)
    )


@pytest.mark.parametrize(
    ("seconds", "message"),
    [
        (2**40, "event_time.seconds must be a valid Timestamp"),
        (-(2**63), "event_time.seconds must be a valid Timestamp"),
        (
            7_258_118_400,
            "s in the future; at most 5 s of clock skew is allowed (check the caller's clock)",
        ),  # 2200
        (NOW_NS // SECOND_NS - 2 * 3_600, "s old; the state view's TTL is 3600 s"),
    ],
)
def test_push_outside_the_window_is_invalid_argument_and_writes_nothing(
    redis_server: EmbeddedRedis, data_dir: Path, seconds: int, message: str
) -> None:
    client = redis_client(redis_server)
    client.delete(KEY)

    async def scenario() -> None:
        async with running(server_config(redis_server.port, data_dir)) as app:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await app.stub.PushState(_push(seconds), timeout=10)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in (raised.value.details() or "")
            assert client.exists(KEY) == 0  # nothing written
            # The state is not frozen: a legitimate push still applies.
            ok = await app.stub.PushState(_push(NOW_NS // SECOND_NS), timeout=10)
            assert ok.applied

    asyncio.run(scenario())


def test_future_ts_and_out_of_range_values_come_from_the_fallback(
    fresh_redis: EmbeddedRedis, data_dir: Path
) -> None:
    client = redis_client(fresh_redis)
    config = server_config(fresh_redis.port, data_dir, cache_ttl_ms=0)

    async def scenario() -> None:
        async with running(config) as app:
            year_2100_ns = 4_102_444_800 * SECOND_NS
            write_observation(client, event_ns={"technical_features": year_2100_ns})
            obs = await app.get()
            technical, macro, state = obs.views
            assert technical.source == FALLBACK
            assert technical.fallback_reason == pb.FALLBACK_REASON_VIEW_FROM_FUTURE
            assert (macro.source, state.source) == (STORE, STORE)
            assert list(obs.values[6:]) == list(STORE_VALUES[6:])

            # Just inside the skew (5 s by default): served from the store; just beyond, not.
            write_observation(client, event_ns={"technical_features": NOW_NS + 5 * SECOND_NS})
            assert (await app.get()).views[0].source == STORE
            write_observation(client, event_ns={"technical_features": NOW_NS + 6 * SECOND_NS})
            assert (await app.get()).views[0].source == FALLBACK

            # A well-formed float32 of 1e30 as rsi_9: the technical view is corrupt.
            corrupt = list(STORE_VALUES)
            corrupt[contract.FEATURE_INDEX["rsi_9"]] = 1e30
            write_observation(client, tuple(corrupt))
            obs = await app.get()
            assert obs.views[0].source == FALLBACK
            assert obs.views[0].fallback_reason == pb.FALLBACK_REASON_VIEW_OUT_OF_RANGE
            assert 0.0 <= obs.values[contract.FEATURE_INDEX["rsi_9"]] <= 100.0

            # position 1.5 in the state view.
            corrupt = list(STORE_VALUES)
            corrupt[contract.FEATURE_INDEX["position"]] = 1.5
            write_observation(client, tuple(corrupt))
            obs = await app.get()
            assert [v.source for v in obs.views] == [STORE, STORE, FALLBACK]
            assert obs.views[2].fallback_reason == pb.FALLBACK_REASON_VIEW_OUT_OF_RANGE

    asyncio.run(scenario())
