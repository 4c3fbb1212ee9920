"""Helpers for the server's integration tests: raw data files, Feast-layout hashes, a running
server on port 0 with a real channel."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import grpc
import pandas as pd
import pytest
import redis
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from canonical import contract
from core.clock import ManualClock
from devstack.embedded_redis import EmbeddedRedis, free_port
from market_data import files, generator
from online_store import feast_layout
from server.app import ObservationServer, create_server
from server.config import ServerConfig
from tests.plausible import PLAUSIBLE_VALUES

BARS_START = date(2025, 12, 1)
BARS_END = date(2025, 12, 12)
LAST_BAR_EVENT_NS = 1_765_562_400_000_000_000  # 2025-12-12 18:00 UTC (17:55 bar + 5 min)
NOW_NS = LAST_BAR_EVENT_NS + 30 * 60 * 10**9  # 18:30 UTC: every view of the data is fresh
SECOND_NS = 10**9
STORE_VALUES = PLAUSIBLE_VALUES


@pytest.fixture(scope="session")
def raw_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    bars = generator.generate_bars(start=BARS_START, end=BARS_END)
    macro = generator.generate_macro(start=generator.macro_start_for(BARS_START), end=BARS_END)
    return bars, macro


def write_raw(data_dir: Path, frames: tuple[pd.DataFrame, pd.DataFrame]) -> Path:
    files.write_bars(files.bars_path(data_dir), frames[0])
    files.write_macro(files.macro_path(data_dir), frames[1])
    return data_dir


@pytest.fixture
def data_dir(tmp_path: Path, raw_frames: tuple[pd.DataFrame, pd.DataFrame]) -> Path:
    """A data_dir whose raw/ files feed the fallback (12 weekdays of bars)."""
    return write_raw(tmp_path / "data", raw_frames)


@pytest.fixture
def empty_data_dir(tmp_path: Path) -> Path:
    return tmp_path / "no-data"


def redis_client(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port)


def write_observation(
    client: redis.Redis,
    values: tuple[float, ...] = STORE_VALUES,
    event_ns: dict[str, int] | None = None,
    symbol: str = "USDCOP",
) -> None:
    """Write a symbol's 15 features and 3 _ts fields in Feast's layout (float32 Values)."""
    event_ns = event_ns or {}
    mapping: dict[bytes, bytes] = {}
    for feature in contract.FEATURES:
        mapping[feast_layout.feature_field(feature.view, feature.name)] = (
            feast_layout.encode_float32(values[feature.index])
        )
    for view in contract.VIEWS:
        ts = event_ns.get(view.name, NOW_NS - 60 * SECOND_NS)
        mapping[feast_layout.ts_field(view.name)] = feast_layout.encode_timestamp(ts)
    client.hset(feast_layout.entity_key(symbol, contract.PROJECT), mapping=mapping)  # type: ignore[arg-type]


def server_config(redis_port: int, data_dir: Path, **overrides: object) -> ServerConfig:
    base = ServerConfig(
        redis_port=redis_port,
        port=0,
        data_dir=data_dir,
        redis_timeout_ms=1000.0,  # generous: a busy CI machine must not trigger the fallback
        fallback_refresh_s=0.05,
    )
    return base.with_overrides(**overrides)


@dataclass
class Running:
    server: ObservationServer
    port: int
    channel: grpc.aio.Channel
    stub: pb_grpc.ObservationServiceStub
    clock: ManualClock

    async def get(self, symbol: str = "USDCOP", timeout: float = 10.0) -> pb.Observation:
        return await self.stub.GetObservation(
            pb.GetObservationRequest(symbol=symbol), timeout=timeout
        )


@contextlib.asynccontextmanager
async def running(config: ServerConfig, clock: ManualClock | None = None) -> AsyncIterator[Running]:
    clock = clock or ManualClock(wall_ns=NOW_NS)
    server, port = await create_server(config, clock=clock)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Running(server, port, channel, pb_grpc.ObservationServiceStub(channel), clock)
    finally:
        await channel.close()
        await server.stop(0)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nothing listens on (Redis 'down' from the start)."""
    yield free_port()
