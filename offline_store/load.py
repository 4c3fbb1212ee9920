"""Idempotent loading into the offline store: COPY into a temporary table, then upsert.

What enters: a psycopg connection and validated frames (L0 bars and macro; L1 view tables with
``symbol``, ``event_timestamp``, ``created`` and the view's float32 features; the agent's
pushes). What leaves: the rows in their tables, and an :class:`Upserted` count (for pushes:
the ones inserted, an already recorded push being left as it is).

Idempotence: ``INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE (values) IS DISTINCT FROM
(new values)``, so a row whose values are unchanged is not touched at all (not even its
``created``, which only says when a value was computed): loading the same day again leaves
every table exactly as it was, and reports 0 changed rows.

Exactness: COPY uses PostgreSQL's binary format with explicit types, so a float64 price lands
as the same double and a float32 feature as the same ``real``, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from canonical import contract
from canonical.offline_tables import offline_columns
from market_data.schema import BARS_COLUMNS, BARS_TABLE, MACRO_COLUMNS, MACRO_SERIES, MACRO_TABLE

_L1_KEYS = ("symbol", "event_timestamp")


@dataclass(frozen=True)
class Upserted:
    """What one upsert changed."""

    table: str
    inserted: int
    """Rows whose key was new."""
    updated: int
    """Rows whose key existed with different values."""
    earliest_changed: datetime | None
    """Earliest time key (``time``, ``date`` or ``event_timestamp``) among changed rows."""

    @property
    def changed(self) -> int:
        return self.inserted + self.updated


def upsert_bars(conn: psycopg.Connection[Any], bars: pd.DataFrame) -> Upserted:
    """L0 bars (``market_data.schema.BARS_COLUMNS``) into ``usdcop_5m``."""
    types = ["text", "timestamptz", *(["float8"] * 4)]
    return _upsert(conn, BARS_TABLE, bars, BARS_COLUMNS, types, key=("symbol", "time"))


def upsert_macro(conn: psycopg.Connection[Any], macro: pd.DataFrame) -> Upserted:
    """L0 macro prints (``MACRO_COLUMNS``; ``date`` naive midnight) into ``macro_daily``."""
    frame = macro.assign(date=pd.to_datetime(macro["date"]).dt.date)
    types = ["date", *(["float8"] * len(MACRO_SERIES))]
    return _upsert(conn, MACRO_TABLE, frame, MACRO_COLUMNS, types, key=("date",))


def upsert_view_table(
    conn: psycopg.Connection[Any], view: contract.FeatureView, frame: pd.DataFrame
) -> Upserted:
    """One L1 view table (``canonical.offline_tables`` layout) into its table."""
    extra = offline_columns(view.name)
    columns = (*_L1_KEYS, "created", *view.features, *extra)
    types = [
        "text",
        "timestamptz",
        "timestamptz",
        *(["float4"] * len(view.features)),
        *(["bool"] * len(extra)),
    ]
    return _upsert(conn, view.name, frame, columns, types, key=_L1_KEYS, touch=("created",))


def insert_events(
    conn: psycopg.Connection[Any], events: pd.DataFrame, created: datetime
) -> pd.DataFrame:
    """The agent's pushes (``canonical.state_events.EVENT_COLUMNS``, unique keys) into
    ``state_events``, ``recorded`` = ``created``; an event already stored is left as it is.
    Returns the events inserted now."""
    inserted = []
    with conn.transaction():
        for row in events.itertuples(index=False):
            done = conn.execute(
                "INSERT INTO state_events "
                "(symbol, event_timestamp, position, time_normalized, recorded) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
                (
                    row.symbol,
                    pd.Timestamp(row.event_timestamp).to_pydatetime(),
                    float(row.position),
                    float(row.time_normalized),
                    created,
                ),
            ).fetchone()
            inserted.append(done is not None)
    return events[inserted]


def _upsert(  # noqa: PLR0913 - one upsert's table description
    conn: psycopg.Connection[Any],
    table: str,
    frame: pd.DataFrame,
    columns: Sequence[str],
    types: Sequence[str],
    *,
    key: Sequence[str],
    touch: Sequence[str] = (),
) -> Upserted:
    """COPY ``frame[columns]`` into a temporary table, then insert-or-update into ``table``.

    ``touch`` columns are written with the changed values but do not count as a change.
    """
    values = [c for c in columns if c not in key and c not in touch]
    stage = sql.Identifier(f"_stage_{table}")
    target = sql.Identifier(table)
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))

    def listed(names: Sequence[str], prefix: str) -> sql.Composable:
        return sql.SQL(", ").join(sql.SQL(prefix + "{}").format(sql.Identifier(n)) for n in names)

    upsert = sql.SQL(
        "INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} "
        "ON CONFLICT ({key}) DO UPDATE SET {assign} "
        "WHERE ({old}) IS DISTINCT FROM ({new}) "
        "RETURNING (xmax = 0) AS inserted, {first_key}"
    ).format(
        target=target,
        cols=cols,
        stage=stage,
        key=sql.SQL(", ").join(map(sql.Identifier, key)),
        assign=sql.SQL(", ").join(
            sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in (*values, *touch)
        ),
        old=sql.SQL(", ").join(
            sql.SQL("{t}.{c}").format(t=target, c=sql.Identifier(c)) for c in values
        ),
        new=listed(values, "EXCLUDED."),
        first_key=sql.Identifier(key[-1]),
    )
    rows = _rows(frame, columns)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE TEMP TABLE {stage} (LIKE {target}) ON COMMIT DROP").format(
                stage=stage, target=target
            )
        )
        with cur.copy(
            sql.SQL("COPY {stage} ({cols}) FROM STDIN (FORMAT BINARY)").format(
                stage=stage, cols=cols
            )
        ) as copy:
            copy.set_types(list(types))
            for row in rows:
                copy.write_row(row)
        cur.execute(upsert)
        changed = cur.fetchall()
    inserted = sum(1 for row in changed if row[0])
    times = [row[1] for row in changed]
    earliest = min(times) if times else None
    if earliest is not None and not isinstance(earliest, datetime):
        earliest = datetime(earliest.year, earliest.month, earliest.day)
    return Upserted(
        table=table,
        inserted=inserted,
        updated=len(changed) - inserted,
        earliest_changed=earliest,
    )


def _rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """Plain Python values (datetime, str, float) per row: exact, and what COPY expects."""
    lists: list[list[Any]] = []
    for name in columns:
        column = frame[name]
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            lists.append([moment.to_pydatetime() for moment in column.dt.tz_convert("UTC")])
        else:
            lists.append(column.tolist())
    return list(zip(*lists, strict=True))
