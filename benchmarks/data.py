"""The data every scenario reads: one pipeline run into one Redis, made fresh by the live feed.

What enters: a scratch folder and a running redis-server. What leaves: ``<tmp>/feature_repo``
(a copy of the project's repo) and ``<tmp>/data`` (raw, offline tables, registry), with Redis
holding every view's latest row in Feast's layout, fresh against the wall clock.

Fresh, honestly: the pipeline runs at the wall-clock ``now`` (the history follows the session
calendar), then ``pipeline.live.LiveFeed`` catches up the last hour of simulated bars so no
view is past its TTL whatever the hour or weekday (the servers check TTLs; a benchmark of
expired data would measure the fallback instead).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.embedded_redis import EmbeddedRedis

REPO_ROOT = Path(__file__).resolve().parent.parent
HISTORY_DAYS = 30
"""Calendar days of generated bars: well over the builder's 300-bar window (the macro history
gets its own warm-up from the generator); more only makes the pipeline slower."""


@dataclass(frozen=True)
class BenchData:
    repo_dir: Path
    data_dir: Path
    feast_env: dict[str, str]
    """FEAST_REDIS_* for Feast's servers and SDK (feature_store.yaml expands them)."""
    detail: dict[str, Any] = field(default_factory=dict)


def prepare_data(workdir: Path, redis: EmbeddedRedis, now: datetime | None = None) -> BenchData:
    """Run the pipeline and the live catch-up at ``now`` (default: the wall clock)."""
    from online_store.address import RedisAddress
    from pipeline.live import LiveFeed
    from pipeline.run import run_pipeline

    now = now or datetime.now(UTC)
    repo_dir = workdir / "feature_repo"
    data_dir = workdir / "data"
    shutil.copytree(
        REPO_ROOT / "feature_repo", repo_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    address = RedisAddress(host=redis.host, port=redis.port)
    began = time.perf_counter()
    result = run_pipeline(repo_dir, data_dir, now, address, days=HISTORY_DAYS)
    pipeline_s = time.perf_counter() - began
    assert result.store is not None
    print(result.summary(), flush=True)  # into the run's pipeline.log
    step = LiveFeed(data_dir, result.store).step(datetime.now(UTC))
    return BenchData(
        repo_dir=repo_dir,
        data_dir=data_dir,
        feast_env=address.feast_env(),
        detail={
            "materialized_at": now.isoformat(),
            "history_days": HISTORY_DAYS,
            "bars": result.bars,
            "pipeline_s": round(pipeline_s, 1),
            "pipeline_stage_s": {k: round(v, 2) for k, v in result.stage_seconds.items()},
            "live_catchup_bars": len(step.bar_opens),
            "last_bar_open": step.bar_opens[-1].isoformat() if step.bar_opens else None,
        },
    )
