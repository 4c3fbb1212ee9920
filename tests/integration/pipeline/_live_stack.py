"""A pipeline materialized at the wall clock with its live feed caught up, and the config of a
server over it: what the tests of pushes, the served log and the agent start from (a push must
carry a time near the wall clock, so these tests cannot use the fixed dates of the others)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.embedded_redis import EmbeddedRedis
from online_store.address import RedisAddress
from pipeline.live import LiveFeed
from pipeline.run import PipelineResult, run_pipeline
from server.config import ServerConfig
from tests.integration.feast._support import (
    HISTORY_DAYS,
    RepoCopy,
    address_of,
    copy_feature_repo,
)


@dataclass
class LiveStack:
    repo: RepoCopy
    address: RedisAddress
    result: PipelineResult
    feed: LiveFeed
    """Records the pushes and the served log held in Redis at each step."""

    def server_config(self, redis: EmbeddedRedis, **overrides: Any) -> ServerConfig:
        return ServerConfig(
            redis_host=redis.host,
            redis_port=redis.port,
            port=0,
            data_dir=self.repo.data_dir,
            symbols=("USDCOP",),
            redis_timeout_ms=1000.0,
        ).with_overrides(**overrides)


def live_stack(tmp_path: Path, redis: EmbeddedRedis) -> LiveStack:
    """Run the pipeline at now, then the feed's catch-up to now."""
    repo = copy_feature_repo(tmp_path)
    address = address_of(redis)
    now = datetime.now(UTC)
    result = run_pipeline(repo.repo_dir, repo.data_dir, now, address, days=HISTORY_DAYS)
    assert result.store is not None
    feed = LiveFeed(repo.data_dir, result.store, seed=7, catchup_bars=12, redis=address)
    feed.step(now)
    return LiveStack(repo, address, result, feed)
