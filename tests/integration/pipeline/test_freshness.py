"""Freshness is real: history that ended on Friday is expired by Sunday.

Materializing at Sunday noon reaches back one TTL only (to Saturday), finds no rows and writes
nothing; materializing at Friday 18:00 writes every view
(tests/integration/feast/test_ttl_expiry.py)."""

from __future__ import annotations

import pytest

from canonical import contract
from pipeline.feast_online import read_online_observation
from pipeline.run import run_pipeline
from tests.integration.feast._support import (
    HISTORY_DAYS,
    SUNDAY_NOON,
    address_of,
    copy_feature_repo,
    dump_redis,
)

pytestmark = pytest.mark.integration


def test_sunday_materializes_nothing_fresh(tmp_path, fresh_redis) -> None:
    repo = copy_feature_repo(tmp_path)
    result = run_pipeline(
        repo.repo_dir, repo.data_dir, SUNDAY_NOON, address_of(fresh_redis), days=HISTORY_DAYS
    )
    assert result.raw_generated  # history follows the session calendar: it ends Friday 18:00
    windows = {m.view: m for m in result.materialized}
    for view in contract.VIEWS:
        assert windows[view.name].start == SUNDAY_NOON - view.ttl
    assert dump_redis(fresh_redis) == {}  # no view written
    observation = read_online_observation(result.store, "USDCOP", SUNDAY_NOON)
    assert [v.status for v in observation.views] == ["missing"] * len(contract.VIEWS)
    assert observation.values == (None,) * contract.N_FEATURES
