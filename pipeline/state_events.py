"""The agent's pushes into the offline store, and the state rows derived from them.

What enters: the offline store (``offline_store.store``), and the Redis address and Feast
project of the server's push stream (``canonical.state_events``). What leaves: every applied
``PushState`` recorded once in the offline ``state_events`` table
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

import pandas as pd

from canonical import contract
from canonical.offline_tables import events_frame
from canonical.state_events import StateEvent, stream_key
from offline_store.store import OfflineStore
from online_store.address import RedisAddress

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


def sync_state_events(
    offline: OfflineStore,
    redis: RedisAddress | None,
    project: str = contract.PROJECT,
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
            new = _record(offline, events_frame(events), created)
            client.xdel(key, *[entry_id for entry_id, _ in entries])
            drained += len(entries)
            recorded += len(new)
            if len(new):
                first = pd.Timestamp(new["event_timestamp"].min()).to_pydatetime()
                changed = offline.rederive_state(first)
                if changed is not None and (earliest is None or changed < earliest):
                    earliest = changed
            if len(entries) < _BATCH:
                break
    finally:
        client.close()
    return StateSync(drained, recorded, malformed, earliest)


def _record(offline: OfflineStore, events: pd.DataFrame, created: datetime) -> pd.DataFrame:
    """Store the events not stored yet; returns those."""
    if events.empty:
        return events
    return offline.record_events(events.drop_duplicates(_KEY, keep="first"), created)
