"""Reading the offline store back: frames in the layout the rest of the project uses.

What enters: a psycopg connection (and optionally symbols and a trailing bar count). What
leaves: validated frames -- bars and macro exactly as ``market_data.files`` reads them
(``market_data.schema``), and L1 view tables as ``canonical.offline_tables`` builds them --
the agent's recorded pushes (``state_events``), plus a cheap change signature the server's
fallback polls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from canonical import contract
from canonical.offline_tables import offline_columns
from canonical.state_events import EVENT_COLUMNS
from market_data.schema import (
    BARS_COLUMNS,
    BARS_TABLE,
    MACRO_COLUMNS,
    MACRO_TABLE,
    validate_bars,
    validate_macro,
)


def read_bars(
    conn: psycopg.Connection[Any],
    symbols: Sequence[str] | None = None,
    *,
    last: int | None = None,
) -> pd.DataFrame:
    """Bars of ``symbols`` (all when None), ascending; with ``last``, only each symbol's latest
    ``last`` bars (read through the primary key, newest first)."""
    cols = sql.SQL(", ").join(map(sql.Identifier, BARS_COLUMNS))
    if symbols is None:
        symbols = [row[0] for row in conn.execute("SELECT DISTINCT symbol FROM usdcop_5m")]
    if last is None:
        query = sql.SQL(
            "SELECT {cols} FROM {table} WHERE symbol = ANY(%s) ORDER BY symbol, time"
        ).format(cols=cols, table=sql.Identifier(BARS_TABLE))
        params: tuple[Any, ...] = (list(symbols),)
    else:
        query = sql.SQL(
            "SELECT b.* FROM unnest(%s::text[]) AS s(symbol) CROSS JOIN LATERAL "
            "(SELECT {cols} FROM {table} t WHERE t.symbol = s.symbol "
            "ORDER BY t.time DESC LIMIT %s) AS b ORDER BY b.symbol, b.time"
        ).format(cols=cols, table=sql.Identifier(BARS_TABLE))
        params = (list(symbols), last)
    rows = conn.execute(query, params).fetchall()
    frame = pd.DataFrame(rows, columns=list(BARS_COLUMNS))
    frame["time"] = pd.to_datetime(frame["time"], utc=True).astype("datetime64[ns, UTC]")
    for name in BARS_COLUMNS[2:]:
        frame[name] = frame[name].astype(np.float64)
    return validate_bars(frame)


def read_macro(conn: psycopg.Connection[Any]) -> pd.DataFrame:
    """Every macro print, ascending by date."""
    cols = sql.SQL(", ").join(map(sql.Identifier, MACRO_COLUMNS))
    rows = conn.execute(
        sql.SQL("SELECT {cols} FROM {table} ORDER BY date").format(
            cols=cols, table=sql.Identifier(MACRO_TABLE)
        )
    ).fetchall()
    frame = pd.DataFrame(rows, columns=list(MACRO_COLUMNS))
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    for name in MACRO_COLUMNS[1:]:
        frame[name] = frame[name].astype(np.float64)
    return validate_macro(frame)


def read_view_table(
    conn: psycopg.Connection[Any],
    view: contract.FeatureView,
    symbols: Sequence[str] | None = None,
    since: pd.Timestamp | None = None,
    until: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One L1 table (only ``symbols``' rows with event time in ``[since, until]`` where given),
    ordered by symbol then event time, features as float32."""
    extra = offline_columns(view.name)
    columns = ("symbol", "event_timestamp", "created", *view.features, *extra)
    where = [sql.SQL("TRUE")]
    params: list[Any] = []
    if symbols is not None:
        where.append(sql.SQL("symbol = ANY(%s)"))
        params.append(list(symbols))
    if since is not None:
        where.append(sql.SQL("event_timestamp >= %s"))
        params.append(since.to_pydatetime())
    if until is not None:
        where.append(sql.SQL("event_timestamp <= %s"))
        params.append(until.to_pydatetime())
    rows = conn.execute(
        sql.SQL("SELECT {cols} FROM {table} WHERE {where} ORDER BY symbol, event_timestamp").format(
            cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
            table=sql.Identifier(view.name),
            where=sql.SQL(" AND ").join(where),
        ),
        params,
    ).fetchall()
    frame = pd.DataFrame(rows, columns=list(columns))
    for name in ("event_timestamp", "created"):
        frame[name] = pd.to_datetime(frame[name], utc=True).astype("datetime64[ns, UTC]")
    for name in view.features:
        frame[name] = frame[name].astype(np.float32)
    for name in extra:
        frame[name] = frame[name].astype(bool)
    return frame


def read_events(conn: psycopg.Connection[Any]) -> pd.DataFrame:
    """Every recorded push of ``state_events`` (``EVENT_COLUMNS``), by symbol then event time
    (the schema must be applied)."""
    rows = conn.execute(
        "SELECT symbol, event_timestamp, position, time_normalized FROM state_events "
        "ORDER BY symbol, event_timestamp"
    ).fetchall()
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    frame["symbol"] = frame["symbol"].astype(object)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True).astype(
        "datetime64[ns, UTC]"
    )
    for name in ("position", "time_normalized"):
        frame[name] = frame[name].astype("float32")
    return frame


def raw_signature(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    """Changes whenever bars or macro prints are added (row counts and latest keys)."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM usdcop_5m), (SELECT max(time) FROM usdcop_5m), "
        "(SELECT count(*) FROM macro_daily), (SELECT max(date) FROM macro_daily)"
    ).fetchone()
    return tuple(row) if row is not None else ()
