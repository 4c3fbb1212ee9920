"""The footprint benchmark against a real server process and a real redis-server: every start
is timed to a real SERVING answer, and the RSS rows name one process per server process."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.footprint import measure
from devstack.embedded_redis import EmbeddedRedis, free_port
from market_data import generator
from server.config import ServerConfig
from tests.integration.server.conftest import (
    BARS_END,
    BARS_START,
    redis_client,
    write_observation,
    write_raw,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.mark.parametrize("workers", [1, 2])
def test_footprint_times_each_start_and_reads_every_process(
    workers: int,
    fresh_redis: EmbeddedRedis,
    tmp_path: Path,
) -> None:
    write_observation(redis_client(fresh_redis))
    bars = generator.generate_bars(start=BARS_START, end=BARS_END)
    macro = generator.generate_macro(start=generator.macro_start_for(BARS_START), end=BARS_END)
    data_dir = write_raw(tmp_path / "data", (bars, macro))
    config = ServerConfig(
        port=free_port(), redis_port=fresh_redis.port, data_dir=data_dir, workers=workers
    )
    row = measure(config, runs=2, calls=50, floor=tmp_path if workers == 1 else None)
    assert len(row.start_to_serving_s) == 2
    assert all(0 < s < 60 for s in row.start_to_serving_s)
    processes = 1 if workers == 1 else 1 + workers  # a supervisor and its workers
    assert len(row.rss_after_warmup_mb) == processes
    assert len(row.rss_after_burst_mb) == processes
    assert all(mb > 10 for mb in row.rss_after_burst_mb)
    assert f"--workers {workers}" in row.summary()
    # --workers 1: each start paired with a bare gRPC server's start, timed the same way
    assert len(row.floor_start_to_serving_s) == (2 if workers == 1 else 0)
    assert all(0 < s < 60 for s in row.floor_start_to_serving_s)
    assert ("bare gRPC server's start" in row.summary()) == (workers == 1)
