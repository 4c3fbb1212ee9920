"""Feast materializes -> the observation server returns bit-identical float32 values.

The server (a real one, port 0, cache off, its clock injected) reads the Redis that the pipeline
materialized with Feast, for two symbols; every view must come from the online store and equal
``FeatureStore.get_online_features`` for ``observation_15d`` bit for bit. On Sunday the same rows
are past their TTLs: Feast's SDK still returns them, the server does not serve them as fresh."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import grpc
import numpy as np
import pytest
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from canonical import contract
from core.clock import ManualClock
from server.app import create_server
from server.config import ServerConfig
from tests.integration.feast._support import FRIDAY_CLOSE, SUNDAY_NOON
from tests.integration.feast.conftest import SYMBOLS

pytestmark = pytest.mark.integration


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def _feast_vector(store, symbol: str) -> np.ndarray:
    service = store.get_feature_service(contract.FEATURE_SERVICE)
    online = store.get_online_features(
        features=service, entity_rows=[{contract.ENTITY: symbol}]
    ).to_dict()
    return np.array([online[name][0] for name in contract.FEATURE_NAMES], dtype=np.float32)


def _serve(materialized, now: datetime) -> dict[str, pb.Observation]:
    config = ServerConfig(
        redis_host=materialized.redis.host,
        redis_port=materialized.redis.port,
        port=0,
        cache_ttl_ms=0.0,  # every call reads Redis
        redis_timeout_ms=1000.0,  # a busy machine must not trigger the fallback
        symbols=SYMBOLS,
        data_dir=materialized.repo.data_dir,
    )

    async def scenario() -> dict[str, pb.Observation]:
        server, port = await create_server(config, clock=ManualClock(wall_ns=_ns(now)))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.ObservationServiceStub(channel)
                return {
                    symbol: await stub.GetObservation(
                        pb.GetObservationRequest(symbol=symbol), timeout=10
                    )
                    for symbol in SYMBOLS
                }
        finally:
            await server.stop(0)

    return asyncio.run(scenario())


def test_server_values_are_feasts_bit_for_bit(materialized) -> None:
    served = _serve(materialized, FRIDAY_CLOSE + timedelta(minutes=1))
    for symbol in SYMBOLS:
        observation = served[symbol]
        expected = _feast_vector(materialized.store, symbol)
        got = np.array(observation.values, dtype=np.float32)
        assert got.view(np.uint32).tolist() == expected.view(np.uint32).tolist(), symbol
        assert [v.view for v in observation.views] == [v.name for v in contract.VIEWS]
        assert {v.source for v in observation.views} == {pb.VALUE_SOURCE_ONLINE_STORE}
        assert {v.freshness for v in observation.views} == {pb.FRESHNESS_FRESH}
        assert {v.event_time.ToNanoseconds() for v in observation.views} == {_ns(FRIDAY_CLOSE)}
        assert not observation.from_cache
        assert observation.contract_hash == contract.CONTRACT_HASH
    assert not np.array_equal(np.array(served["USDCOP"].values), np.array(served["USDMXN"].values))


def test_on_sunday_the_server_does_not_serve_the_expired_rows_as_fresh(materialized) -> None:
    served = _serve(materialized, SUNDAY_NOON)["USDCOP"]
    assert {v.fallback_reason for v in served.views} == {pb.FALLBACK_REASON_VIEW_EXPIRED}
    assert {v.source for v in served.views} == {pb.VALUE_SOURCE_COMPUTE_FALLBACK}
    # Feast's SDK, which does not enforce TTLs, still hands out the Friday rows.
    assert np.isfinite(_feast_vector(materialized.store, "USDCOP")).all()
