"""The fallback's compute worker is a separate process: losing it must not cost an answer,
and the next refresh starts a new one."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
from usdcop.observation.v1 import observation_pb2 as pb

from devstack.embedded_redis import EmbeddedRedis
from server import fallback
from server.fallback import compute_rows
from tests.integration.server.conftest import running, server_config, write_raw

pytestmark = pytest.mark.integration


def test_killed_compute_worker_is_replaced_and_answers_continue(
    fresh_redis: EmbeddedRedis,
    data_dir: Path,
    raw_frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    async def scenario() -> None:
        config = server_config(fresh_redis.port, data_dir, cache_ttl_ms=0)
        async with running(config) as app:
            before = await app.get()  # no entity in Redis: every view from the fallback
            assert {v.source for v in before.views} == {pb.VALUE_SOURCE_COMPUTE_FALLBACK}
            pool = fallback._compute_pool
            assert pool is not None
            for pid in list(pool._processes):  # the one spawned worker
                os.kill(pid, signal.SIGKILL)
            # Raw files change (one bar less): the refresh meets the dead worker first.
            bars, macro = raw_frames
            write_raw(data_dir, (bars.iloc[:-1], macro))
            expected = compute_rows(data_dir, ("USDCOP",))["USDCOP"].values
            assert list(before.values) != list(expected)
            for _ in range(200):
                obs = await app.get()  # answered throughout, from the previous rows
                assert len(obs.values) == 15
                if list(obs.values) == list(expected):
                    break
                await asyncio.sleep(0.05)
            assert list(obs.values) == list(expected)
            assert fallback._compute_pool is not pool

    asyncio.run(scenario())
