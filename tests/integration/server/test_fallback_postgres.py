"""The compute fallback reads its raw window from PostgreSQL (USDCOP_FALLBACK_SOURCE=postgres):
the same observation, bit for bit, as from the raw files, through a real gRPC server; new bars
in the database reach it at the next refresh."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from devstack.embedded_redis import EmbeddedRedis
from market_data import generator
from offline_store.connection import PostgresAddress
from offline_store.load import upsert_bars, upsert_macro
from offline_store.schema import apply_schema
from server.config import ServerConfig
from tests.integration.server.conftest import LAST_BAR_EVENT_NS, running, server_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FALLBACK = 2  # VALUE_SOURCE_COMPUTE_FALLBACK


def _postgres_config(base: ServerConfig, address: PostgresAddress) -> ServerConfig:
    return base.with_overrides(
        fallback_source="postgres",
        postgres_host=address.host,
        postgres_port=address.port,
        postgres_db=address.database,
        postgres_user=address.user,
        postgres_password=address.password,
    )


def test_fallback_from_postgres_equals_fallback_from_files(
    fresh_redis: EmbeddedRedis,
    data_dir: Path,
    raw_frames: tuple[pd.DataFrame, pd.DataFrame],
    postgres_db: PostgresAddress,
) -> None:
    bars, macro = raw_frames
    with postgres_db.connect() as conn:
        apply_schema(conn)
        upsert_bars(conn, bars)
        upsert_macro(conn, macro)
    # Redis is empty: every view of USDCOP comes from the fallback.
    files_config = server_config(fresh_redis.port, data_dir)
    pg_config = _postgres_config(server_config(fresh_redis.port, Path("/nonexistent")), postgres_db)
    assert postgres_db.password not in repr(pg_config)

    async def observe(config: ServerConfig) -> tuple[np.ndarray, list[int], list[int]]:
        async with running(config) as app:
            reply = await app.get()
            return (
                np.array(reply.values, dtype=np.float32),
                [v.source for v in reply.views],
                [v.event_time.ToNanoseconds() for v in reply.views],
            )

    from_files = asyncio.run(observe(files_config))
    from_pg = asyncio.run(observe(pg_config))
    assert from_files[1] == from_pg[1] == [FALLBACK] * 3
    assert np.isfinite(from_pg[0]).all()
    assert from_pg[0].view(np.uint32).tolist() == from_files[0].view(np.uint32).tolist()
    assert from_pg[2] == from_files[2] == [LAST_BAR_EVENT_NS] * 3


def test_new_bars_in_postgres_reach_the_fallback(
    fresh_redis: EmbeddedRedis,
    raw_frames: tuple[pd.DataFrame, pd.DataFrame],
    postgres_db: PostgresAddress,
) -> None:
    bars, macro = raw_frames
    with postgres_db.connect() as conn:
        apply_schema(conn)
        upsert_bars(conn, bars)
        upsert_macro(conn, macro)
    base = server_config(fresh_redis.port, Path("/nonexistent"), cache_ttl_ms=0.0)
    config = _postgres_config(base, postgres_db)
    last_open = pd.Timestamp(bars["time"].max())
    new_open = last_open + pd.Timedelta(minutes=5)
    new = generator.next_bars(bars, [new_open.to_pydatetime()], 7)

    async def scenario() -> tuple[int, int]:
        async with running(config) as app:
            before = (await app.get()).views[0].event_time.ToNanoseconds()
            with postgres_db.connect() as conn:
                upsert_bars(conn, new)
            for _ in range(100):  # the refresh polls every 50 ms in these tests
                await asyncio.sleep(0.05)
                after = (await app.get()).views[0].event_time.ToNanoseconds()
                if after != before:
                    return before, after
            return before, before

    before, after = asyncio.run(scenario())
    assert before == LAST_BAR_EVENT_NS
    assert after == LAST_BAR_EVENT_NS + 5 * 60 * 10**9
