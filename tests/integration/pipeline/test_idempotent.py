"""Running the pipeline twice changes nothing: Redis, files and registry stay as they were."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from canonical import contract
from pipeline.feast_repo import open_feature_store
from pipeline.run import run_pipeline
from tests.integration.feast._support import (
    FRIDAY_CLOSE,
    HISTORY_DAYS,
    address_of,
    copy_feature_repo,
    dump_redis,
)

pytestmark = pytest.mark.integration


def _files(data_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(data_dir)): p.read_bytes() for p in sorted(data_dir.rglob("*.parquet"))
    }


def _intervals(repo_dir: Path, address) -> dict[str, object]:
    store = open_feature_store(repo_dir, address)
    return {fv.name: fv.materialization_intervals for fv in store.list_feature_views()}


def test_second_run_changes_nothing(tmp_path: Path, fresh_redis) -> None:
    repo = copy_feature_repo(tmp_path)
    address = address_of(fresh_redis)

    def run(now):
        return run_pipeline(repo.repo_dir, repo.data_dir, now, address, days=HISTORY_DAYS)

    first = run(FRIDAY_CLOSE)
    assert first.raw_generated and first.offline.written
    assert all(m.ran for m in first.materialized)
    redis_before, files_before = dump_redis(fresh_redis), _files(repo.data_dir)
    intervals_before = _intervals(repo.repo_dir, address)
    assert len(redis_before) == 1
    fields = next(iter(redis_before.values()))
    # 15 feature fields + one _ts field per view
    assert len(fields) == contract.N_FEATURES + len(contract.VIEWS)

    second = run(FRIDAY_CLOSE)
    assert not second.raw_generated
    assert not second.offline.written
    assert [m.ran for m in second.materialized] == [False] * len(contract.VIEWS)
    assert dump_redis(fresh_redis) == redis_before
    assert _files(repo.data_dir) == files_before
    assert _intervals(repo.repo_dir, address) == intervals_before

    # Later, with no new data: windows run, but nothing newer exists, so Redis is unchanged.
    later = run(FRIDAY_CLOSE + timedelta(minutes=30))
    assert all(m.ran for m in later.materialized)
    assert dump_redis(fresh_redis) == redis_before
    assert _files(repo.data_dir) == files_before
