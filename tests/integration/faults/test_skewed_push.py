"""A clock-skewed PushState cannot freeze the state: the rule, as a sequence.

1. ``event_time = now + 300 s`` is refused (INVALID_ARGUMENT naming the 5 s skew allowed);
2. a push inside the skew (now + 3 s) is accepted; a correct push after it (now) answers
   ``applied=false`` with ``stored_event_time`` = now + 3 s, so the agent sees why;
3. once the clock passes the stored event time, correct pushes apply again (3 s at most);
4. a state stored beyond the skew (written under a wider rule, or by another writer) is served
   from the fallback (VIEW_FROM_FUTURE) and the next valid push replaces it.

Real redis-server, real server on port 0 with an injected clock, real channel."""

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
from server.config import ServerConfig
from tests.integration.server.conftest import (
    NOW_NS,
    SECOND_NS,
    redis_client,
    running,
    server_config,
    write_observation,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

KEY = feast_layout.entity_key("USDCOP", contract.PROJECT)
STATE_TS = feast_layout.ts_field(contract.STATE.name)


def _push(event_ns: int, position: float) -> pb.PushStateRequest:
    seconds, nanos = divmod(event_ns, SECOND_NS)
    return pb.PushStateRequest(
        symbol="USDCOP", position=position, event_time=Timestamp(seconds=seconds, nanos=nanos)
    )


def _stored_ns(answer: pb.PushStateResponse) -> int:
    stamp = answer.stored_event_time
    return stamp.seconds * SECOND_NS + stamp.nanos


def test_default_skew_is_5_s() -> None:
    assert ServerConfig().max_clock_skew_s == 5.0


def test_a_skewed_push_cannot_freeze_the_state(redis_server: EmbeddedRedis, data_dir: Path) -> None:
    client = redis_client(redis_server)
    client.delete(KEY)
    write_observation(client, event_ns={v.name: NOW_NS - 60 * SECOND_NS for v in contract.VIEWS})

    async def scenario() -> None:
        config = server_config(redis_server.port, data_dir, cache_ttl_ms=0.0)
        async with running(config) as app:
            # 1. Far in the future: refused, nothing written.
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await app.stub.PushState(_push(NOW_NS + 300 * SECOND_NS, 1.0), timeout=10)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert raised.value.details() == (
                "event_time is 300 s in the future; at most 5 s of clock skew is allowed "
                "(check the caller's clock)"
            )
            assert feast_layout.decode_timestamp_ns(client.hget(KEY, STATE_TS)) == (
                NOW_NS - 60 * SECOND_NS
            )

            # 2. Inside the skew: accepted; the correct push after it says what won.
            ahead = NOW_NS + 3 * SECOND_NS
            first = await app.stub.PushState(_push(ahead, 1.0), timeout=10)
            assert first.applied is True
            assert not first.HasField("stored_event_time")
            held = await app.stub.PushState(_push(NOW_NS, -1.0), timeout=10)
            assert held.applied is False
            assert _stored_ns(held) == ahead

            # 3. Once the clock passes it, correct pushes apply again.
            app.clock.advance(3.5)
            later = await app.stub.PushState(_push(NOW_NS + 3_500_000_000, -1.0), timeout=10)
            assert later.applied is True
            observation = await app.get()
            assert observation.values[contract.FEATURE_NAMES.index("position")] == -1.0

            # 4. A stored state beyond the skew is corrupt: fallback for reads, replaced by a push.
            beyond = app.clock.wall_ns() + 300 * SECOND_NS
            client.hset(KEY, STATE_TS, feast_layout.encode_timestamp(beyond))
            served = await app.get()
            state = served.views[contract.VIEWS.index(contract.STATE)]
            assert state.fallback_reason == pb.FALLBACK_REASON_VIEW_FROM_FUTURE
            replaced = await app.stub.PushState(_push(app.clock.wall_ns(), 0.5), timeout=10)
            assert replaced.applied is True
            assert feast_layout.decode_timestamp_ns(client.hget(KEY, STATE_TS)) == (
                app.clock.wall_ns()
            )
            served = await app.get()
            state = served.views[contract.VIEWS.index(contract.STATE)]
            assert state.source == pb.VALUE_SOURCE_ONLINE_STORE
            assert served.values[contract.FEATURE_NAMES.index("position")] == 0.5

    asyncio.run(scenario())
