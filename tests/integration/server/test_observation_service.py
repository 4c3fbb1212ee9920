"""GetObservation / DescribeObservation / PushState against a real redis-server, a real server
on port 0 and a real grpc.aio channel."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from usdcop.observation.v1 import observation_pb2 as pb

from canonical import contract
from devstack.embedded_redis import EmbeddedRedis
from online_store import feast_layout
from server.fallback import compute_rows
from tests.integration.server.conftest import (
    LAST_BAR_EVENT_NS,
    NOW_NS,
    SECOND_NS,
    STORE_VALUES,
    redis_client,
    running,
    server_config,
    write_observation,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

STORE = pb.VALUE_SOURCE_ONLINE_STORE
FALLBACK = pb.VALUE_SOURCE_COMPUTE_FALLBACK


def test_from_store_then_cache_hit_then_refresh_after_ttl(
    fresh_redis: EmbeddedRedis, data_dir: Path
) -> None:
    client = redis_client(fresh_redis)
    write_observation(client)

    async def scenario() -> None:
        # TTL mode (no invalidation stream): test_invalidation.py covers the tracked cache.
        config = server_config(fresh_redis.port, data_dir, cache_tracking=False)
        async with running(config) as app:
            first = await app.get()
            assert list(first.values) == list(STORE_VALUES)
            assert [v.source for v in first.views] == [STORE] * 3
            assert [v.freshness for v in first.views] == [pb.FRESHNESS_FRESH] * 3
            assert not first.from_cache
            assert first.contract_hash == contract.CONTRACT_HASH

            # The store changes, but within the TTL the cached answer is served.
            changed = tuple(v * 2 for v in STORE_VALUES)
            write_observation(client, changed)
            app.clock.advance(0.999)
            second = await app.get()
            assert second.from_cache
            assert list(second.values) == list(STORE_VALUES)
            assert second.served_at == first.served_at

            app.clock.advance(0.001)  # TTL (1 s) reached: a new read
            third = await app.get()
            assert not third.from_cache
            assert list(third.values) == list(changed)

    asyncio.run(scenario())


def test_values_written_with_feasts_own_encoders(
    fresh_redis: EmbeddedRedis, data_dir: Path
) -> None:
    from feast.infra.online_stores.helpers import _mmh3, _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = _redis_key(
        contract.PROJECT,
        EntityKey(join_keys=["symbol"], entity_values=[Value(string_val="USDCOP")]),
        entity_key_serialization_version=3,
    )
    mapping: dict[bytes | str, bytes] = {}
    values = [0.01 * (i + 1) for i in range(contract.N_FEATURES)]  # within the valid ranges
    for feature in contract.FEATURES:
        encoded = (
            Value(double_val=values[feature.index])  # Feast may write doubles: rounded to f32
            if feature.view == "macro_features"
            else Value(float_val=values[feature.index])
        )
        mapping[_mmh3(f"{feature.view}:{feature.name}")] = encoded.SerializeToString()
    for view in contract.VIEWS:
        ts = Timestamp()
        ts.FromNanoseconds(NOW_NS - 5 * SECOND_NS)
        mapping[f"_ts:{view.name}"] = ts.SerializeToString()
    redis_client(fresh_redis).hset(key, mapping=mapping)  # type: ignore[arg-type]

    async def scenario() -> None:
        async with running(server_config(fresh_redis.port, data_dir)) as app:
            obs = await app.get()
            expected = [float(pb.Observation(values=[v]).values[0]) for v in values]  # float32
            assert list(obs.values) == expected
            assert [v.source for v in obs.views] == [STORE] * 3
            assert {v.event_time.ToNanoseconds() for v in obs.views} == {NOW_NS - 5 * SECOND_NS}

    asyncio.run(scenario())


def test_view_past_ttl_comes_from_fallback(fresh_redis: EmbeddedRedis, data_dir: Path) -> None:
    write_observation(
        redis_client(fresh_redis),
        event_ns={"state_features": NOW_NS - 3600 * SECOND_NS - 1},  # state TTL is 1 h
    )
    fallback_row = compute_rows(data_dir, ("USDCOP",))["USDCOP"]

    async def scenario() -> None:
        async with running(server_config(fresh_redis.port, data_dir, cache_ttl_ms=0)) as app:
            obs = await app.get()
            assert list(obs.values[:13]) == list(STORE_VALUES[:13])
            assert list(obs.values[13:]) == list(fallback_row.values[13:])
            assert [v.source for v in obs.views] == [STORE, STORE, FALLBACK]
            state = obs.views[2]
            assert state.fallback_reason == pb.FALLBACK_REASON_VIEW_EXPIRED
            assert state.freshness == pb.FRESHNESS_FRESH  # the fallback's bar is 30 min old
            assert state.event_time.ToNanoseconds() == LAST_BAR_EVENT_NS
            # Two hours later the fallback's own data is past the state TTL too: it says so.
            app.clock.advance(2 * 3600)
            later = await app.get()
            assert later.views[2].freshness == pb.FRESHNESS_EXPIRED
            assert later.views[2].source == FALLBACK
            assert later.views[0].fallback_reason == pb.FALLBACK_REASON_NONE  # 24 h TTL

    asyncio.run(scenario())


def test_missing_entity_comes_from_fallback(fresh_redis: EmbeddedRedis, data_dir: Path) -> None:
    async def scenario() -> None:
        async with running(server_config(fresh_redis.port, data_dir)) as app:
            obs = await app.get()
            assert [v.source for v in obs.views] == [FALLBACK] * 3
            assert {v.fallback_reason for v in obs.views} == {pb.FALLBACK_REASON_ENTITY_MISSING}
            assert list(obs.values) == list(compute_rows(data_dir, ("USDCOP",))["USDCOP"].values)

    asyncio.run(scenario())


def test_corrupt_field_falls_back_and_server_stays_up(
    fresh_redis: EmbeddedRedis, data_dir: Path
) -> None:
    client = redis_client(fresh_redis)
    write_observation(client)
    key = feast_layout.entity_key("USDCOP", contract.PROJECT)
    client.hset(key, feast_layout.feature_field("technical_features", "rsi_9"), b"\xff\x00garbage")
    client.hset(key, feast_layout.ts_field("macro_features"), b"\x08")  # truncated Timestamp
    fallback_row = compute_rows(data_dir, ("USDCOP",))["USDCOP"]

    async def scenario() -> None:
        async with running(server_config(fresh_redis.port, data_dir, cache_ttl_ms=0)) as app:
            for _ in range(3):
                obs = await app.get()
                assert [v.source for v in obs.views] == [FALLBACK, FALLBACK, STORE]
                assert [v.fallback_reason for v in obs.views[:2]] == [
                    pb.FALLBACK_REASON_VIEW_MISSING
                ] * 2
                assert list(obs.values[:13]) == list(fallback_row.values[:13])
                assert list(obs.values[13:]) == list(STORE_VALUES[13:])
            write_observation(client)  # repaired: back to the store
            assert [v.source for v in (await app.get()).views] == [STORE] * 3

    asyncio.run(scenario())


def test_redis_outage_and_recovery(fresh_redis: EmbeddedRedis, data_dir: Path) -> None:
    write_observation(redis_client(fresh_redis))
    fallback_values = list(compute_rows(data_dir, ("USDCOP",))["USDCOP"].values)
    config = server_config(
        fresh_redis.port,
        data_dir,
        redis_timeout_ms=50.0,
        breaker_failure_threshold=2,
        breaker_open_ms=1000.0,
    )

    async def scenario() -> None:
        async with running(config) as app:
            obs = await app.get()
            assert [v.source for v in obs.views] == [STORE] * 3
            fresh_redis.stop()
            for _ in range(10):  # each step past the cache TTL: every call is a new answer
                app.clock.advance(1.0)
                obs = await app.get()
                assert [v.source for v in obs.views] == [FALLBACK] * 3
                assert {v.fallback_reason for v in obs.views} == {
                    pb.FALLBACK_REASON_STORE_UNAVAILABLE
                }
                assert list(obs.values) == fallback_values
            fresh_redis.restart()  # same port, empty: the pipeline would re-materialize
            write_observation(redis_client(fresh_redis))
            app.clock.advance(1.0)  # past the cache TTL and the breaker's open period
            recovered = await app.get()
            assert [v.source for v in recovered.views] == [STORE] * 3
            assert list(recovered.values) == list(STORE_VALUES)

    asyncio.run(scenario())


def test_unavailable_when_neither_store_nor_fallback(
    closed_port: int, empty_data_dir: Path
) -> None:
    async def scenario() -> None:
        async with running(server_config(closed_port, empty_data_dir)) as app:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await app.get()
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert raised.value.details() == (
                "no fresh data from the online store and no fallback data loaded for USDCOP"
            )

    asyncio.run(scenario())


def test_deadline_respected_with_a_stalled_redis(
    fresh_redis: EmbeddedRedis, data_dir: Path
) -> None:
    client = redis_client(fresh_redis)
    write_observation(client)
    config = server_config(fresh_redis.port, data_dir, cache_ttl_ms=0, redis_timeout_ms=5000.0)

    async def scenario() -> None:
        async with running(config) as app:
            assert [v.source for v in (await app.get()).views] == [STORE] * 3
            client.execute_command("CLIENT", "PAUSE", "2000", "ALL")
            try:
                loop = asyncio.get_running_loop()
                started = loop.time()
                # Redis would take 2 s; the caller allows 300 ms: the fallback answers in time.
                obs = await app.get(timeout=0.3)
                assert loop.time() - started < 0.3
                assert {v.fallback_reason for v in obs.views} == {
                    pb.FALLBACK_REASON_STORE_UNAVAILABLE
                }
            finally:
                redis_client(fresh_redis).execute_command("CLIENT", "UNPAUSE")

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("symbol", "code", "details"),
    [
        ("", grpc.StatusCode.INVALID_ARGUMENT, "symbol must be 1-16 characters of [A-Z0-9_]"),
        ("A" * 17, grpc.StatusCode.INVALID_ARGUMENT, "symbol must be 1-16 characters of [A-Z0-9_]"),
        ("usdcop", grpc.StatusCode.INVALID_ARGUMENT, "symbol must be 1-16 characters of [A-Z0-9_]"),
        (
            "USD/COP",
            grpc.StatusCode.INVALID_ARGUMENT,
            "symbol must be 1-16 characters of [A-Z0-9_]",
        ),
        (
            "EURUSD",
            grpc.StatusCode.NOT_FOUND,
            "unknown symbol 'EURUSD': this server does not serve it",
        ),
    ],
)
def test_bad_symbols(
    redis_server: EmbeddedRedis, data_dir: Path, symbol: str, code: grpc.StatusCode, details: str
) -> None:
    async def scenario() -> None:
        async with running(server_config(redis_server.port, data_dir)) as app:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await app.get(symbol)
            assert raised.value.code() == code
            assert raised.value.details() == details
            with pytest.raises(grpc.aio.AioRpcError) as pushed:
                await app.stub.PushState(
                    pb.PushStateRequest(
                        symbol=symbol, position=0.0, event_time=Timestamp(seconds=1)
                    )
                )
            assert pushed.value.code() == code

    asyncio.run(scenario())


def test_garbage_request_bytes_are_invalid_argument(
    redis_server: EmbeddedRedis, data_dir: Path
) -> None:
    async def scenario() -> None:
        async with running(server_config(redis_server.port, data_dir)) as app:
            for method in ("GetObservation", "PushState", "DescribeObservation"):
                raw = app.channel.unary_unary(f"/usdcop.observation.v1.ObservationService/{method}")
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await raw(b"\xff\xff\xff\xff", timeout=5)
                assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert raised.value.details().startswith("malformed ")
            # the server is still up
            assert len((await app.get()).values) == contract.N_FEATURES

    asyncio.run(scenario())


def test_describe_observation(redis_server: EmbeddedRedis, data_dir: Path) -> None:
    async def scenario() -> None:
        async with running(server_config(redis_server.port, data_dir)) as app:
            described = await app.stub.DescribeObservation(pb.DescribeObservationRequest())
            assert described.contract_id == contract.CONTRACT_ID
            assert described.contract_hash == contract.CONTRACT_HASH
            assert [f.name for f in described.features] == list(contract.FEATURE_NAMES)
            assert [f.index for f in described.features] == list(range(15))
            assert {f.dtype for f in described.features} == {"float32"}
            assert [(v.name, v.ttl_seconds) for v in described.views] == [
                ("technical_features", 86400),
                ("macro_features", 86400),
                ("state_features", 3600),
            ]
            assert described.feast_project == contract.PROJECT
            assert described.feature_service == contract.FEATURE_SERVICE

    asyncio.run(scenario())


# --- PushState ---------------------------------------------------------------------------


def _stored_state(
    client: object, symbol: str = "USDCOP"
) -> tuple[float | None, float | None, int | None]:
    key = feast_layout.entity_key(symbol, contract.PROJECT)
    position, time_normalized, ts = client.hmget(  # type: ignore[attr-defined]
        key,
        [
            feast_layout.feature_field("state_features", "position"),
            feast_layout.feature_field("state_features", "time_normalized"),
            feast_layout.ts_field("state_features"),
        ],
    )
    return (
        feast_layout.decode_value(position),
        feast_layout.decode_value(time_normalized),
        feast_layout.decode_timestamp_ns(ts),
    )


def test_push_state_writes_feast_layout_and_ignores_stale_pushes(
    fresh_redis: EmbeddedRedis, data_dir: Path
) -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    client = redis_client(fresh_redis)
    write_observation(client)
    push_ns = NOW_NS - 10 * SECOND_NS  # 18:19:50 UTC -> (319 min 50 s from 13:00) / 300 -> 1.0
    event_time = Timestamp()
    event_time.FromNanoseconds(push_ns)

    async def scenario() -> None:
        async with running(server_config(fresh_redis.port, data_dir)) as app:
            cached = await app.get()
            assert cached.values[13] == STORE_VALUES[13]
            response = await app.stub.PushState(
                pb.PushStateRequest(symbol="USDCOP", position=-0.5, event_time=event_time)
            )
            assert response.applied
            assert response.time_normalized == 1.0
            assert _stored_state(client) == (-0.5, 1.0, push_ns)
            # Feast's own Value proto reads the bytes the same way.
            key = feast_layout.entity_key("USDCOP", contract.PROJECT)
            raw = client.hget(key, feast_layout.feature_field("state_features", "position"))
            assert Value.FromString(raw).float_val == -0.5  # type: ignore[arg-type]
            # The push invalidated the cache: the next call reads the new state.
            after = await app.get()
            assert not after.from_cache
            assert list(after.values[13:]) == [-0.5, 1.0]
            assert after.views[2].event_time.ToNanoseconds() == push_ns

            # A push with an older or equal event time changes nothing (Feast's rule).
            for stale_ns in (push_ns, push_ns - 1):
                stale = Timestamp()
                stale.FromNanoseconds(stale_ns)
                response = await app.stub.PushState(
                    pb.PushStateRequest(symbol="USDCOP", position=1.0, event_time=stale)
                )
                assert not response.applied
                assert _stored_state(client) == (-0.5, 1.0, push_ns)
            assert list((await app.get()).values[13:]) == [-0.5, 1.0]

            # A newer push at 13:30 UTC gives time_normalized 30/300.
            newer_ns = (push_ns // (86400 * SECOND_NS)) * 86400 * SECOND_NS + 13 * 3600 * SECOND_NS
            newer_ns += 30 * 60 * SECOND_NS + 86400 * SECOND_NS  # next day, so it is newer
            newer = Timestamp()
            newer.FromNanoseconds(newer_ns)
            app.clock.advance((newer_ns - NOW_NS) / SECOND_NS)  # pushes must be near "now"
            response = await app.stub.PushState(
                pb.PushStateRequest(symbol="USDCOP", position=1.0, event_time=newer)
            )
            assert response.applied
            expected_tn = float(pb.PushStateResponse(time_normalized=0.1).time_normalized)
            assert response.time_normalized == expected_tn
            assert _stored_state(client) == (1.0, expected_tn, newer_ns)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("position", "with_time", "details"),
    [
        (math.nan, True, "position must be a finite number in [-1, 1]"),
        (2.0, True, "position must be a finite number in [-1, 1]"),
        (-1.0000001, True, "position must be a finite number in [-1, 1]"),
        (math.inf, True, "position must be a finite number in [-1, 1]"),
        (0.5, False, "event_time is required"),
    ],
)
def test_invalid_push_writes_nothing(
    fresh_redis: EmbeddedRedis, data_dir: Path, position: float, with_time: bool, details: str
) -> None:
    client = redis_client(fresh_redis)

    async def scenario() -> None:
        async with running(server_config(fresh_redis.port, data_dir)) as app:
            request = pb.PushStateRequest(symbol="USDCOP", position=position)
            if with_time:
                request.event_time.FromNanoseconds(NOW_NS)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await app.stub.PushState(request)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert raised.value.details() == details
            assert client.dbsize() == 0

    asyncio.run(scenario())


def test_push_state_without_redis_is_unavailable(closed_port: int, data_dir: Path) -> None:
    async def scenario() -> None:
        async with running(server_config(closed_port, data_dir)) as app:
            request = pb.PushStateRequest(symbol="USDCOP", position=0.0)
            request.event_time.FromNanoseconds(NOW_NS)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await app.stub.PushState(request)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert raised.value.details() == (
                "the online store could not be written; nothing was changed"
            )

    asyncio.run(scenario())


def _hmget_calls(client: Any) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_hmget", {}).get("calls", 0))


def test_concurrent_misses_share_one_redis_read(fresh_redis: EmbeddedRedis, data_dir: Path) -> None:
    client = redis_client(fresh_redis)
    write_observation(client)

    async def scenario() -> None:
        async with running(server_config(fresh_redis.port, data_dir)) as app:
            client.config_resetstat()
            # Redis stalls 300 ms, so all 50 calls arrive while the first one's read is pending.
            client.execute_command("CLIENT", "PAUSE", "300", "ALL")
            answers = await asyncio.gather(*(app.get() for _ in range(50)))
            assert all(list(a.values) == list(STORE_VALUES) for a in answers)
            assert not any(a.from_cache for a in answers)  # one shared fresh read
            assert len({a.served_at.ToNanoseconds() for a in answers}) == 1
            assert _hmget_calls(client) == 1

    asyncio.run(scenario())


def test_breaker_stops_calling_a_stalled_redis_then_probes(
    fresh_redis: EmbeddedRedis, data_dir: Path
) -> None:
    client = redis_client(fresh_redis)
    write_observation(client)
    config = server_config(
        fresh_redis.port,
        data_dir,
        cache_ttl_ms=0,
        redis_timeout_ms=30.0,
        breaker_failure_threshold=3,
        breaker_open_ms=1000.0,
    )

    async def scenario() -> None:
        async with running(config) as app:
            loop = asyncio.get_running_loop()
            assert {v.source for v in (await app.get()).views} == {STORE}
            # Longer than the 1 s confirmation PING (online_store/health.py): a timeout alone
            # does not open the breaker, a Redis that stays silent does.
            client.execute_command("CLIENT", "PAUSE", "1500", "ALL")
            for _ in range(3):  # each pays the 30 ms timeout, then the fallback answers
                started = loop.time()
                obs = await app.get()
                assert loop.time() - started >= 0.025
                assert {v.fallback_reason for v in obs.views} == {
                    pb.FALLBACK_REASON_STORE_UNAVAILABLE
                }
            await asyncio.sleep(1.7)  # the PING failed; the pause is over, queued commands ran
            client.config_resetstat()
            for _ in range(5):  # breaker open: straight to the fallback, Redis untouched
                obs = await app.get()
                assert {v.source for v in obs.views} == {FALLBACK}
            assert _hmget_calls(client) == 0
            app.clock.advance(1.0)  # open period over: the next call probes and closes it
            assert {v.source for v in (await app.get()).views} == {STORE}
            assert {v.source for v in (await app.get()).views} == {STORE}
            assert _hmget_calls(client) == 2

    asyncio.run(scenario())
