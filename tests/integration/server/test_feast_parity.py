"""Feast materializes -> the server returns bit-identical float32 values; PushState -> Feast's
own SDK reads the pushed state (and a stale push does not overwrite it)."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from usdcop.observation.v1 import observation_pb2 as pb

from canonical import contract
from core.clock import ManualClock
from devstack.embedded_redis import EmbeddedRedis
from online_store.address import RedisAddress
from pipeline.run import run_pipeline
from pipeline.settings import REPO_ROOT
from tests.integration.server.conftest import running, server_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FRIDAY_CLOSE = datetime(2026, 1, 9, 18, 0, tzinfo=UTC)
NOW = FRIDAY_CLOSE + timedelta(minutes=1)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def _feast_vector(store: Any, service: Any) -> np.ndarray:
    online = store.get_online_features(
        features=service, entity_rows=[{contract.ENTITY: "USDCOP"}]
    ).to_dict()
    return np.array([online[name][0] for name in contract.FEATURE_NAMES], dtype=np.float32)


def test_server_matches_feast_and_feast_reads_pushed_state(
    fresh_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    repo_dir = tmp_path / "feature_repo"
    shutil.copytree(
        REPO_ROOT / "feature_repo", repo_dir, ignore=shutil.ignore_patterns("__pycache__", "data")
    )
    data_dir = tmp_path / "data"
    result = run_pipeline(
        repo_dir,
        data_dir,
        FRIDAY_CLOSE,
        RedisAddress(host=fresh_redis.host, port=fresh_redis.port),
        days=30,
    )
    store = result.store
    assert store is not None
    service = store.get_feature_service(contract.FEATURE_SERVICE)
    feast_values = _feast_vector(store, service)
    assert np.isfinite(feast_values).all()

    push_time = FRIDAY_CLOSE + timedelta(seconds=30)  # newer than the materialized 18:00 row
    stale_time = FRIDAY_CLOSE + timedelta(seconds=10)

    async def scenario() -> tuple[pb.Observation, pb.Observation]:
        config = server_config(fresh_redis.port, data_dir)
        async with running(config, ManualClock(wall_ns=_ns(NOW))) as app:
            served = await app.get()
            pushed = await app.stub.PushState(
                pb.PushStateRequest(
                    symbol="USDCOP", position=-1.0, event_time=_timestamp(push_time)
                )
            )
            assert pushed.applied
            stale = await app.stub.PushState(
                pb.PushStateRequest(
                    symbol="USDCOP", position=0.75, event_time=_timestamp(stale_time)
                )
            )
            assert not stale.applied
            return served, await app.get()

    served, after_push = asyncio.run(scenario())
    got = np.array(served.values, dtype=np.float32)
    assert got.view(np.uint32).tolist() == feast_values.view(np.uint32).tolist()
    assert {v.source for v in served.views} == {pb.VALUE_SOURCE_ONLINE_STORE}
    assert {v.event_time.ToNanoseconds() for v in served.views} == {_ns(FRIDAY_CLOSE)}

    # Feast's SDK reads what PushState wrote; the stale push changed nothing.
    feast_after = _feast_vector(store, service)
    position = contract.FEATURE_INDEX["position"]
    time_normalized = contract.FEATURE_INDEX["time_normalized"]
    assert feast_after[position] == np.float32(-1.0)
    assert feast_after[time_normalized] == np.float32(1.0)  # 18:00:30 clips to 1
    assert feast_after[:13].tolist() == feast_values[:13].tolist()
    assert np.array(after_push.values, dtype=np.float32).tolist() == feast_after.tolist()


def _timestamp(moment: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts
