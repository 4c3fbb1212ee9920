"""The live mode appends real-time bars and the online store's event time follows the clock.

Starts on a Sunday (history ended Friday, nothing fresh), so every fresh row in Redis comes
from the live mode. The clock is injected: nothing here depends on the wall clock or weekday."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from canonical import contract
from canonical.offline_tables import build_offline_tables, offline_table_path
from market_data import files
from pipeline.feast_online import read_online_observation
from pipeline.live import LiveFeed
from pipeline.run import run_pipeline
from tests.integration.feast._support import (
    HISTORY_DAYS,
    SUNDAY_NOON,
    address_of,
    copy_feature_repo,
    dump_redis,
)

pytestmark = pytest.mark.integration

NOW = SUNDAY_NOON + timedelta(minutes=2, seconds=30)  # 12:02:30: the 11:55 slot has completed


def _latest_offline(data_dir, symbol: str) -> np.ndarray:
    rows = []
    for view in contract.VIEWS:
        table = pd.read_parquet(offline_table_path(data_dir, view.name))
        last = table[table["symbol"] == symbol].sort_values("event_timestamp").iloc[-1]
        rows.extend(last[n] for n in view.features)
    return np.array(rows, dtype=np.float32)


def test_live_mode_appends_bars_and_keeps_the_store_fresh(tmp_path, fresh_redis) -> None:
    repo = copy_feature_repo(tmp_path)
    result = run_pipeline(
        repo.repo_dir, repo.data_dir, NOW, address_of(fresh_redis), days=HISTORY_DAYS
    )
    assert dump_redis(fresh_redis) == {}  # Sunday: history expired, nothing written
    feed = LiveFeed(repo.data_dir, result.store, seed=7, catchup_bars=12)
    friday_last_open = feed.last_bar_open

    # Catch-up: the 12 most recent completed slots (one hour), not the whole weekend.
    step = feed.step(NOW)
    assert len(step.bar_opens) == 12
    assert step.bar_opens[0] == SUNDAY_NOON - timedelta(hours=1)
    assert step.bar_opens[-1] == SUNDAY_NOON - timedelta(minutes=5)
    assert step.offline is not None and step.offline.added == 12
    observation = read_online_observation(result.store, "USDCOP", NOW)
    assert [v.status for v in observation.views] == ["fresh"] * len(contract.VIEWS)
    assert {v.event_time for v in observation.views} == {SUNDAY_NOON}
    online = observation.as_float32()
    assert (
        online.view(np.uint32).tolist()
        == _latest_offline(repo.data_dir, "USDCOP").view(np.uint32).tolist()
    )

    # Ticks: nothing until the next slot completes, then exactly one bar per slot.
    assert feed.step(NOW + timedelta(minutes=2)).bar_opens == ()
    tick = feed.step(NOW + timedelta(minutes=3))  # 12:05:30
    assert tick.bar_opens == (SUNDAY_NOON,)
    later = read_online_observation(result.store, "USDCOP", NOW + timedelta(minutes=3))
    assert {v.event_time for v in later.views} == {SUNDAY_NOON + timedelta(minutes=5)}
    assert not np.array_equal(later.as_float32(), online)

    # A long pause catches up at most 12 bars again, leaving a gap like a session break.
    jump = feed.step(NOW + timedelta(hours=3))
    assert len(jump.bar_opens) == 12
    assert jump.bar_opens[-1] == SUNDAY_NOON + timedelta(hours=3) - timedelta(minutes=5)

    # The rows appended incrementally equal a full rebuild from the raw files, bit for bit.
    bars = files.read_bars(files.bars_path(repo.data_dir))
    assert bars["time"].max() == jump.bar_opens[-1]
    assert int((bars["time"] > friday_last_open).sum()) == 12 + 1 + 12
    rebuilt = build_offline_tables(
        bars, files.read_macro(files.macro_path(repo.data_dir)), created=NOW
    )
    for view in contract.VIEWS:
        stored = pd.read_parquet(offline_table_path(repo.data_dir, view.name))
        columns = ["symbol", "event_timestamp", *view.features]
        pd.testing.assert_frame_equal(
            stored[columns].reset_index(drop=True), rebuilt[view.name][columns], check_exact=True
        )
