"""The offline store's schema and loading: versioned SQL applied once, columns derived from the
contract, L0/L1 read back bit for bit, and loading the same day twice changes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from canonical import contract
from canonical.offline_tables import build_offline_tables, offline_columns
from market_data import generator
from offline_store.connection import PostgresAddress
from offline_store.postgres_tables import sync_postgres
from offline_store.read import read_bars, read_macro, read_view_table
from offline_store.schema import applied_versions, apply_schema, migrations

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

START, END = date(2025, 11, 3), date(2025, 11, 21)
CREATED = datetime(2025, 11, 21, 18, 5, tzinfo=UTC)
TABLES = ("usdcop_5m", "macro_daily", *(v.name for v in contract.VIEWS))


@pytest.fixture(scope="module")
def raw() -> tuple[pd.DataFrame, pd.DataFrame]:
    bars = generator.generate_bars(("USDCOP", "USDMXN"), START, END, 11)
    macro = generator.generate_macro(generator.macro_start_for(START), END, 11)
    return bars, macro


def _snapshot(address: PostgresAddress) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, with its physical version (xmin): an untouched row keeps it."""
    with address.connect() as conn:
        return {
            table: conn.execute(f"SELECT xmin::text, * FROM {table} ORDER BY 2, 3").fetchall()
            for table in TABLES
        }


def test_schema_is_applied_once_and_matches_the_contract(postgres_db: PostgresAddress) -> None:
    with postgres_db.connect() as conn:
        assert apply_schema(conn) == [m.version for m in migrations()] == [1, 2, 3]
        assert apply_schema(conn) == []
        assert applied_versions(conn) == [1, 2, 3]
        for view in contract.VIEWS:
            columns = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = %s ORDER BY ordinal_position",
                (view.name,),
            ).fetchall()
            assert [c for c, _ in columns] == [
                "symbol",
                "event_timestamp",
                "created",
                *view.features,
                *offline_columns(view.name),
            ]
            assert {t for c, t in columns if c in view.features} == {"real"}
        keys = conn.execute(
            "SELECT tc.table_name, string_agg(kcu.column_name, ',' ORDER BY kcu.ordinal_position) "
            "FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage"
            " kcu USING (constraint_name) WHERE tc.constraint_type = 'PRIMARY KEY' "
            "AND tc.table_schema = 'public' GROUP BY tc.table_name"
        ).fetchall()
    assert dict(keys) == {
        "usdcop_5m": "symbol,time",
        "macro_daily": "date",
        "schema_version": "version",
        "state_events": "symbol,event_timestamp",
        **{v.name: "symbol,event_timestamp" for v in contract.VIEWS},
    }


def test_loading_round_trips_bit_for_bit_and_twice_changes_nothing(
    postgres_db: PostgresAddress, raw: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    bars, macro = raw
    first = sync_postgres(postgres_db, bars, macro, created=CREATED)
    assert first.written and first.rows > 0 and first.earliest_new is not None
    before = _snapshot(postgres_db)
    assert all(before[t] for t in TABLES)

    # The same day again, computed at another time: nothing changes, not even `created`.
    again = sync_postgres(postgres_db, bars, macro, created=CREATED + timedelta(hours=3))
    assert not again.written and again.added == 0 and again.earliest_new is None
    assert _snapshot(postgres_db) == before

    expected = build_offline_tables(bars, macro, CREATED)
    with postgres_db.connect() as conn:
        stored_bars, stored_macro = read_bars(conn), read_macro(conn)
        pd.testing.assert_frame_equal(
            stored_bars, bars.sort_values(["symbol", "time"], ignore_index=True)
        )
        pd.testing.assert_frame_equal(stored_macro, macro.reset_index(drop=True))
        for view in contract.VIEWS:
            stored = read_view_table(conn, view)
            want = expected[view.name]
            assert len(stored) == len(want)
            got = stored[list(view.features)].to_numpy()
            assert got.dtype == np.float32
            assert np.array_equal(
                got.view(np.uint32), want[list(view.features)].to_numpy().view(np.uint32)
            )
            assert stored["event_timestamp"].tolist() == want["event_timestamp"].tolist()


def test_a_changed_value_is_updated_and_reported(
    postgres_db: PostgresAddress, raw: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    bars, macro = raw
    sync_postgres(postgres_db, bars, macro, created=CREATED)
    changed = bars.copy()
    last = changed.index[-1]
    changed.loc[last, ["close", "high"]] = changed.loc[last, "high"] * 1.01
    refresh = sync_postgres(postgres_db, changed, macro, created=CREATED + timedelta(hours=1))
    assert refresh.written
    assert (
        refresh.earliest_new
        == (changed.loc[last, "time"] + pd.Timedelta(minutes=5)).to_pydatetime()
    )
    with postgres_db.connect() as conn:
        close = conn.execute(
            "SELECT close FROM usdcop_5m WHERE symbol = %s AND time = %s",
            (changed.loc[last, "symbol"], changed.loc[last, "time"].to_pydatetime()),
        ).fetchone()
    assert close == (changed.loc[last, "close"],)


def test_new_sessions_plan_without_nested_loops(postgres_db: PostgresAddress) -> None:
    with postgres_db.connect() as conn:
        assert conn.execute("SHOW enable_nestloop").fetchone() == ("on",)
        apply_schema(conn)
    with postgres_db.connect() as conn:
        assert conn.execute("SHOW enable_nestloop").fetchone() == ("off",)


def test_pushes_recorded_in_postgres_set_the_state_rows_after_them(
    postgres_db: PostgresAddress, raw: tuple[pd.DataFrame, pd.DataFrame], fresh_redis
) -> None:
    """The PostgreSQL store: pushes drained into ``state_events`` once; the stored state rows
    at and after a push carry its position (synthetic False), and so do rows L1 adds later."""
    import redis as redis_py

    from canonical.state_events import StateEvent, stream_key
    from offline_store.factory import open_store
    from offline_store.postgres_tables import append_postgres
    from offline_store.read import read_view_table
    from online_store.address import RedisAddress
    from pipeline.state_events import sync_state_events

    bars, macro = raw
    cut = bars["time"] < pd.Timestamp("2025-11-20", tz="UTC")
    sync_postgres(postgres_db, bars[cut], macro, created=CREATED)
    pushed_at = pd.Timestamp("2025-11-19 15:02:30", tz="UTC")
    client = redis_py.Redis(host=fresh_redis.host, port=fresh_redis.port)
    try:
        for _ in range(2):  # the same push twice: recorded once
            client.xadd(
                stream_key(contract.PROJECT),
                StateEvent("USDCOP", pushed_at.value, 0.5, 0.4).fields(),
            )
        address = RedisAddress(host=fresh_redis.host, port=fresh_redis.port)
        store = open_store(Path("unused"), postgres_db)
        done = sync_state_events(store, address, created=CREATED)
        assert (done.drained, done.recorded) == (2, 1)
        assert done.earliest_changed == pd.Timestamp("2025-11-19 15:05", tz="UTC")
        assert client.xlen(stream_key(contract.PROJECT)) == 0
    finally:
        client.close()
    assert store.read_events()["position"].tolist() == [0.5]
    append_postgres(postgres_db, bars, bars[~cut], macro, created=CREATED)
    with postgres_db.connect() as conn:
        state = read_view_table(conn, contract.STATE, symbols=["USDCOP"])
    after = state["event_timestamp"] >= pushed_at
    assert after.sum() > 100 and (~after).sum() > 100  # L1 added a day after the push
    assert state.loc[after, "position"].eq(0.5).all()
    assert not state.loc[after, "synthetic"].any() and state.loc[~after, "synthetic"].all()
