"""The agent's pushes into the offline store, and the state rows derived from them.

What enters: the data folder (file store) or the PostgreSQL address, and the Redis address and
Feast project of the server's push stream (``canonical.state_events``). What leaves: every
applied ``PushState`` recorded once in the offline ``state_events`` table
(``data/offline/state_events.parquet``, or the ``state_events`` table), the stored state rows
re-derived from the events (``canonical.offline_tables.apply_state_events``: the position the
agent held at each row's time, ``synthetic`` False), and a :class:`StateSync` saying what
changed, whose ``earliest_changed`` widens the next materialization.

Order and durability. Entries are read from the stream, written to the offline store (an
idempotent insert keyed by symbol and event time: a repeat changes nothing), and only then
deleted from the stream, so a crash in between records an event twice (harmlessly), never not
at all. Every pipeline step that builds or materializes state rows runs this first (the live
feed's tick, ``pipeline run``, L1, L1b): a materialization then writes the agent's own position
into Redis, never the generator's rule over it. An entry that does not decode is counted and
dropped (it cannot be recorded, and keeping it would block the stream).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from canonical import contract
from canonical.offline_tables import (
    apply_state_events,
    events_frame,
    offline_table_path,
    write_offline_tables,
)
from canonical.state_events import EVENT_COLUMNS, StateEvent, stream_key
from market_data.files import atomic_write
from offline_store.connection import PostgresAddress
from online_store.address import RedisAddress

EVENTS_TABLE = "state_events"
_KEY = ["symbol", "event_timestamp"]
_BATCH = 10_000


@dataclass(frozen=True)
class StateSync:
    """What one sync did."""

    drained: int = 0
    """Stream entries read (and deleted once recorded)."""
    recorded: int = 0
    """Events new to the offline store."""
    malformed: int = 0
    """Entries that did not decode (dropped)."""
    earliest_changed: datetime | None = None
    """Earliest stored state row whose position changed; None when none did."""


def earliest(*moments: datetime | None) -> datetime | None:
    """The earliest of the given moments; None when none is given."""
    given = [m for m in moments if m is not None]
    return min(given) if given else None


def events_path(data_dir: Path) -> Path:
    """``data_dir/offline/state_events.parquet``."""
    return offline_table_path(data_dir, EVENTS_TABLE)


def read_events(data_dir: Path, postgres: PostgresAddress | None = None) -> pd.DataFrame:
    """Every recorded event (``EVENT_COLUMNS``), by symbol then event time."""
    if postgres is not None:
        with postgres.connect() as conn:
            return read_events_postgres(conn)
    path = events_path(data_dir)
    if not path.exists():
        return events_frame([])
    return pd.read_parquet(path)[list(EVENT_COLUMNS)]


def read_events_postgres(conn: Any) -> pd.DataFrame:
    """Every event of the ``state_events`` table (the schema must be applied)."""
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


def sync_state_events(
    data_dir: Path,
    redis: RedisAddress | None,
    project: str = contract.PROJECT,
    postgres: PostgresAddress | None = None,
    *,
    created: datetime,
) -> StateSync:
    """Drain the push stream into the offline store, then re-derive the stored state rows from
    the earliest new event on. With ``redis`` None only the re-derivation of nothing runs."""
    if redis is None:
        return StateSync()
    client = redis.connect()
    try:
        key = stream_key(project)
        drained = recorded = malformed = 0
        earliest: datetime | None = None
        while True:
            entries = client.xrange(key, "-", "+", count=_BATCH)
            if not entries:
                break
            events: list[StateEvent] = []
            for _, fields in entries:
                try:
                    events.append(StateEvent.from_fields(fields))
                except (KeyError, ValueError, UnicodeDecodeError):
                    malformed += 1
            new = _record(data_dir, postgres, events_frame(events), created)
            client.xdel(key, *[entry_id for entry_id, _ in entries])
            drained += len(entries)
            recorded += len(new)
            if len(new):
                first = pd.Timestamp(new["event_timestamp"].min()).to_pydatetime()
                changed = _rederive(data_dir, postgres, first, created)
                if changed is not None and (earliest is None or changed < earliest):
                    earliest = changed
            if len(entries) < _BATCH:
                break
    finally:
        client.close()
    return StateSync(drained, recorded, malformed, earliest)


def _record(
    data_dir: Path, postgres: PostgresAddress | None, events: pd.DataFrame, created: datetime
) -> pd.DataFrame:
    """Store the events not stored yet; returns those."""
    if events.empty:
        return events
    events = events.drop_duplicates(_KEY, keep="first")
    if postgres is not None:
        return _record_postgres(postgres, events, created)
    stored = read_events(data_dir)
    known = events.merge(stored[_KEY], on=_KEY, how="left", indicator=True)["_merge"]
    new = events[(known == "left_only").to_numpy()]
    if new.empty:
        return new
    merged = (
        pd.concat([stored, new], ignore_index=True)
        .sort_values(_KEY, kind="stable")
        .reset_index(drop=True)
    )
    atomic_write(events_path(data_dir), lambda tmp: merged.to_parquet(tmp, index=False))
    return new


def _record_postgres(
    postgres: PostgresAddress, events: pd.DataFrame, created: datetime
) -> pd.DataFrame:
    from offline_store.schema import apply_schema

    inserted = []
    with postgres.connect() as conn:
        apply_schema(conn)
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


def _rederive(
    data_dir: Path, postgres: PostgresAddress | None, since: datetime, created: datetime
) -> datetime | None:
    """Re-derive the stored state rows at or after ``since``; the earliest changed one."""
    if postgres is not None:
        return _rederive_postgres(postgres, since)
    path = offline_table_path(data_dir, contract.STATE.name)
    if not path.exists():
        return None  # L1 has not run yet: it derives the rows when it does
    stored = pd.read_parquet(path)
    derived = apply_state_events(stored, read_events(data_dir))
    changed = _changed(stored, derived)
    if not changed.any():
        return None
    write_offline_tables(data_dir, {contract.STATE.name: derived})
    moment: datetime = pd.Timestamp(derived.loc[changed, "event_timestamp"].min()).to_pydatetime()
    return moment


def _rederive_postgres(postgres: PostgresAddress, since: datetime) -> datetime | None:
    from offline_store.load import upsert_view_table
    from offline_store.read import read_view_table

    with postgres.connect() as conn:
        stored = read_view_table(conn, contract.STATE, since=pd.Timestamp(since))
        derived = apply_state_events(stored, read_events_postgres(conn))
        if not _changed(stored, derived).any():
            return None
        return upsert_view_table(conn, contract.STATE, derived).earliest_changed


def _changed(stored: pd.DataFrame, derived: pd.DataFrame) -> pd.Series:
    position = stored["position"].to_numpy() != derived["position"].to_numpy()
    before = stored["synthetic"].to_numpy() if "synthetic" in stored else True
    synthetic = before != derived["synthetic"].to_numpy()
    return pd.Series(position | synthetic, index=stored.index)
