"""L0 and L1 of the pipeline in PostgreSQL (``FEAST_OFFLINE_STORE_TYPE=postgres``).

What enters: the database address, the raw bars and macro frames (L0, as ``pipeline.raw_data``
loads them from ``data/raw``, the landing folder of generated or dropped-in files) and a
``created`` time; the agent's pushes to record. What leaves: the schema applied
(``offline_store/sql``), L0 upserted into ``usdcop_5m`` / ``macro_daily``, and the three L1
tables computed from L0 *as read back from PostgreSQL* and upserted, with an
:class:`~offline_store.store.OfflineRefresh` saying what changed (its ``earliest_new`` drives
incremental materialization, as for the file store); pushes inserted into ``state_events`` and
the state rows after them re-derived.

Idempotent: every write is an upsert that leaves unchanged rows untouched
(``offline_store.load``), so running the same day again changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import psycopg

from canonical import contract
from canonical.builder import CanonicalFeatureBuilder
from canonical.offline_tables import apply_state_events, build_offline_tables
from offline_store.connection import PostgresAddress
from offline_store.l1_rows import rows_after, state_changed
from offline_store.load import (
    Upserted,
    insert_events,
    upsert_bars,
    upsert_macro,
    upsert_view_table,
)
from offline_store.read import read_bars, read_events, read_macro, read_view_table
from offline_store.schema import apply_schema
from offline_store.store import OfflineRefresh


def sync_postgres(
    address: PostgresAddress, bars: pd.DataFrame, macro: pd.DataFrame, created: datetime
) -> OfflineRefresh:
    """Schema, then L0, then L1 rebuilt from the stored L0 (a full pipeline run)."""
    with address.connect() as conn:
        apply_schema(conn)
        upsert_bars(conn, bars)
        upsert_macro(conn, macro)
        stored_bars, stored_macro = read_bars(conn), read_macro(conn)
        tables = _with_events(build_offline_tables(stored_bars, stored_macro, created), conn)
        done = [upsert_view_table(conn, v, tables[v.name]) for v in contract.VIEWS]
        rows = _count(conn, contract.VIEWS[0].name)
    return _refresh(done, rows)


def append_postgres(  # noqa: PLR0913 - the live append's frames; options keyword-only
    address: PostgresAddress,
    bars: pd.DataFrame,
    new_bars: pd.DataFrame,
    macro: pd.DataFrame,
    *,
    created: datetime,
    builder: CanonicalFeatureBuilder | None = None,
) -> OfflineRefresh:
    """The live mode's step: ``new_bars`` and ``macro`` into L0, then the L1 rows of bars newer
    than each symbol's last stored row (``bars`` is the whole history the window is cut from)."""
    with address.connect() as conn:
        apply_schema(conn)
        upsert_bars(conn, new_bars)
        upsert_macro(conn, macro)
        last = conn.execute(
            "SELECT symbol, max(event_timestamp) FROM technical_features GROUP BY symbol"
        ).fetchall()
        last_event = pd.Series(
            {symbol: pd.Timestamp(moment) for symbol, moment in last}, dtype=object
        )
        tables = rows_after(bars, macro, created, last_event, builder)
        if tables is not None:
            tables = _with_events(tables, conn)
        done = (
            [upsert_view_table(conn, v, tables[v.name]) for v in contract.VIEWS]
            if tables is not None
            else []
        )
        rows = _count(conn, contract.VIEWS[0].name)
    return _refresh(done, rows)


def record_events(
    address: PostgresAddress, events: pd.DataFrame, created: datetime
) -> pd.DataFrame:
    """Insert the events (unique keys) not stored yet (schema applied first); returns those."""
    with address.connect() as conn:
        apply_schema(conn)
        return insert_events(conn, events, created)


def rederive_state(address: PostgresAddress, since: datetime) -> datetime | None:
    """Re-derive the stored state rows at or after ``since``; the earliest changed one."""
    with address.connect() as conn:
        stored = read_view_table(conn, contract.STATE, since=pd.Timestamp(since))
        derived = apply_state_events(stored, read_events(conn))
        if not state_changed(stored, derived).any():
            return None
        return upsert_view_table(conn, contract.STATE, derived).earliest_changed


def _with_events(
    tables: dict[str, pd.DataFrame], conn: psycopg.Connection[Any]
) -> dict[str, pd.DataFrame]:
    """The state rows' positions from the agent's recorded pushes."""
    state = contract.STATE.name
    return {**tables, state: apply_state_events(tables[state], read_events(conn))}


def _count(conn: object, table: str) -> int:
    from psycopg import Connection, sql

    assert isinstance(conn, Connection)
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


def _refresh(done: list[Upserted], rows: int) -> OfflineRefresh:
    changed = [u.earliest_changed for u in done if u.earliest_changed is not None]
    return OfflineRefresh(
        written=any(u.changed for u in done),
        rows=rows,
        added=done[0].inserted if done else 0,
        earliest_new=min(changed) if changed else None,
    )
