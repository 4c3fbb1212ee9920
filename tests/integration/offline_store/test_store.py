"""The offline store's interface, held by both stores through the same tests: the files under
``data/`` and a real PostgreSQL. Each store syncs and appends the same raw data, reads the same
L1 rows back (and the two agree bit for bit), records a push once and re-derives the state rows
after it, gives the fallback the same rows, and says where it is without its password."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from canonical import contract
from canonical.offline_tables import events_frame
from canonical.state_events import StateEvent
from market_data import files, generator
from offline_store.connection import PostgresAddress
from offline_store.factory import MissingDatabaseError, open_store
from offline_store.store import OfflineStore
from pipeline.settings import DEFAULT_REPO_DIR
from server.fallback import compute_rows

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

START, END = date(2025, 11, 3), date(2025, 11, 21)
CREATED = datetime(2025, 11, 21, 18, 5, tzinfo=UTC)
CUT = pd.Timestamp("2025-11-20", tz="UTC")
SYMBOLS = ("USDCOP", "USDMXN")
STORES = ("file", "postgres")


@pytest.fixture(scope="module")
def raw() -> tuple[pd.DataFrame, pd.DataFrame]:
    bars = generator.generate_bars(SYMBOLS, START, END, 11)
    macro = generator.generate_macro(generator.macro_start_for(START), END, 11)
    return bars, macro


def _land(data_dir: Path, bars: pd.DataFrame, macro: pd.DataFrame) -> None:
    """The raw landing files (L0 of the file store; what the PostgreSQL store loads from)."""
    files.write_bars(files.bars_path(data_dir), bars.reset_index(drop=True))
    files.write_macro(files.macro_path(data_dir), macro)


def _open(kind: str, data_dir: Path, request: pytest.FixtureRequest) -> OfflineStore:
    address = request.getfixturevalue("postgres_db") if kind == "postgres" else None
    store = open_store(data_dir, address, kind)
    assert store.kind == kind
    return store


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> OfflineStore:
    return _open(request.param, tmp_path, request)


def _synced(store: OfflineStore, raw: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    """L0 up to CUT synced; returns the bars after it (for an append)."""
    bars, macro = raw
    early = bars[bars["time"] < CUT]
    _land(store.data_dir, early, macro)
    store.sync(early, macro, created=CREATED)
    return bars[bars["time"] >= CUT]


def test_sync_then_again_changes_nothing_and_reads_back(
    store: OfflineStore, raw: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    bars, macro = raw
    _land(store.data_dir, bars, macro)
    first = store.sync(bars, macro, created=CREATED)
    assert first.written and first.added == first.rows > 0
    assert first.earliest_new is not None
    again = store.sync(bars, macro, created=CREATED + timedelta(hours=1))
    assert not again.written and again.earliest_new is None and again.rows == first.rows

    tables = store.read_feature_tables(["USDCOP"])
    assert set(tables) == {v.name for v in contract.VIEWS}
    for view in contract.VIEWS:
        frame = tables[view.name]
        assert set(frame["symbol"]) == {"USDCOP"}
        assert len(frame) == first.rows // len(SYMBOLS)
        assert all(frame[name].dtype == np.float32 for name in view.features)

    read_bars, read_macro = store.read_raw(["USDCOP"])
    wanted = bars[bars["symbol"] == "USDCOP"].reset_index(drop=True)
    assert read_bars.reset_index(drop=True)[list(wanted.columns)].equals(wanted)
    assert len(read_macro) == len(macro)


def test_a_window_reads_only_the_rows_a_join_can_pick(
    store: OfflineStore, raw: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _synced(store, raw)
    last = pd.Timestamp("2025-11-12 16:00", tz="UTC")
    whole = store.read_feature_tables(["USDCOP"])
    window = store.read_feature_tables(["USDCOP"], last.value, last.value)
    for view in contract.VIEWS:
        times = whole[view.name]["event_timestamp"]
        expected = ((times >= last - view.ttl) & (times <= last)).sum()
        assert len(window[view.name]) == expected > 0


def test_append_adds_the_rows_of_new_bars(
    store: OfflineStore, raw: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    bars, macro = raw
    later = _synced(store, raw)
    before = store.raw_signature()
    assert before is not None
    _land(store.data_dir, bars, macro)  # the live feed writes the landing files first
    done = store.append(bars, later, macro, created=CREATED)
    assert done.written and done.added == len(later)  # rows per view, every symbol
    assert done.earliest_new is not None and done.earliest_new > CUT
    assert store.raw_signature() != before


def test_a_push_is_recorded_once_and_sets_the_state_rows_after_it(
    store: OfflineStore, raw: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _synced(store, raw)
    pushed_at = pd.Timestamp("2025-11-19 15:02:30", tz="UTC")
    events = events_frame([StateEvent("USDCOP", pushed_at.value, 0.5, 0.4)])
    assert len(store.record_events(events, CREATED)) == 1
    assert len(store.record_events(events, CREATED)) == 0
    assert store.read_events()["position"].tolist() == [np.float32(0.5)]

    changed = store.rederive_state(pushed_at.to_pydatetime())
    assert changed == pd.Timestamp("2025-11-19 15:05", tz="UTC")
    assert store.rederive_state(pushed_at.to_pydatetime()) is None
    state = store.read_feature_tables(["USDCOP"])[contract.STATE.name]
    after = state["event_timestamp"] >= pushed_at
    assert after.any() and state.loc[after, "position"].eq(np.float32(0.5)).all()


def test_the_fallback_rows_come_from_l0(
    store: OfflineStore, raw: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    bars, macro = raw
    _land(store.data_dir, bars, macro)
    store.sync(bars, macro, created=CREATED)
    window, _ = store.read_raw_window(("USDCOP", "EURUSD"), 100)
    assert set(window) == {"USDCOP"}  # a symbol without bars is left out
    rows = compute_rows(store, ("USDCOP",))
    assert rows == compute_rows(store.data_dir, ("USDCOP",))  # the landing files' rows


def test_health_feast_config_and_description(
    store: OfflineStore, raw: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    assert not store.health().ok  # nothing built yet
    _synced(store, raw)
    health = store.health()
    assert health.ok, health
    assert store.feast_yaml(DEFAULT_REPO_DIR).is_file()
    assert store.feast_env()["FEAST_OFFLINE_STORE_TYPE"] == store.kind
    database = store.database
    if database is not None:
        assert database.password not in store.describe() + health.detail


def test_both_stores_hold_the_same_rows_bit_for_bit(
    tmp_path: Path, raw: tuple[pd.DataFrame, pd.DataFrame], request: pytest.FixtureRequest
) -> None:
    read = {}
    for kind in STORES:
        store = _open(kind, tmp_path / kind, request)
        later = _synced(store, raw)
        _land(store.data_dir, *raw)
        store.append(raw[0], later, raw[1], created=CREATED)
        read[kind] = store.read_feature_tables(list(SYMBOLS))
    for view in contract.VIEWS:
        files_rows, db_rows = (read[kind][view.name] for kind in STORES)
        columns = ["symbol", "event_timestamp", *view.features]
        assert (
            files_rows[columns]
            .reset_index(drop=True)
            .equals(db_rows[columns].reset_index(drop=True))
        )


def test_one_factory_chooses(tmp_path: Path) -> None:
    address = PostgresAddress(host="127.0.0.1", password="s3cret")
    assert open_store(tmp_path).kind == "file"
    assert open_store(tmp_path, address).kind == "postgres"
    assert open_store(tmp_path, address, "file").kind == "file"
    with pytest.raises(MissingDatabaseError, match="POSTGRES_HOST"):
        open_store(tmp_path, None, "postgres")
    with pytest.raises(ValueError, match="file or postgres"):
        open_store(tmp_path, None, "bigquery")
