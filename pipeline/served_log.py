"""The server's served log into the offline store, in Feast's feature-logging schema.

What enters: the data folder and the Redis address and Feast project of the server's
``<project>:served`` stream (``canonical.served_log``). What leaves: every served answer
recorded once under ``data/offline/served_log/__log_date=<day>/part-<first id>.parquet``, one
row per answer in the schema Feast's feature logging writes for a feature service
(``observation_15d``): the join key ``symbol``; per feature ``<view>__<feature>`` (float32),
``<view>__<feature>__timestamp`` (the view's event time) and ``<view>__<feature>__status``
(Feast's FieldStatus: 1 present, 3 not found, 4 outside max age, 0 otherwise); then
``__log_timestamp``, ``__log_date`` and ``__request_id`` (the stream entry's id and the
answer's index in it).
Columns of ours follow Feast's: ``<view>__source`` and ``<view>__fallback_reason`` (Feast's
status cannot say that a value came from the compute fallback) and ``from_cache``.

Order and durability as for the pushes (``pipeline.state_events``): read, write the part file
atomically, then delete the entries from the stream; a crash in between writes a second part
with the same request ids, and readers keep one row per ``__request_id``. The log is stored in
parquet files whatever the offline store (a PostgreSQL table of the same schema is not built).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from canonical import contract
from canonical.offline_tables import OFFLINE_DIR
from canonical.served_log import ServedRow, decode_batch, stream_key
from market_data.files import atomic_write
from online_store.address import RedisAddress

LOG_DIR = "served_log"
REQUEST_ID = "__request_id"
LOG_TIMESTAMP = "__log_timestamp"
LOG_DATE = "__log_date"
_BATCH = 10_000
# Feast's FieldStatus (serving.proto): INVALID 0, PRESENT 1, NULL_VALUE 2, NOT_FOUND 3,
# OUTSIDE_MAX_AGE 4.
_STATUS = {"none": 1, "entity_missing": 3, "view_missing": 3, "view_expired": 4}


@dataclass(frozen=True)
class ServedLogSync:
    """What one drain did."""

    drained: int = 0
    """Stream entries read (each a batch of answers)."""
    recorded: int = 0
    """Answers written to the log."""
    malformed: int = 0
    """Entries that did not decode (dropped)."""


def log_dir(data_dir: Path) -> Path:
    """``data_dir/offline/served_log``."""
    return Path(data_dir) / OFFLINE_DIR / LOG_DIR


def feature_column(view: str, feature: str) -> str:
    """Feast's logged column of one feature (``<view>__<feature>``)."""
    return f"{view}__{feature}"


def served_frame(rows: list[tuple[str, ServedRow]]) -> pd.DataFrame:
    """(request id, row) pairs as the logged table's frame (Feast's schema, then ours)."""
    columns: dict[str, object] = {"symbol": pd.Series([r.symbol for _, r in rows], dtype=object)}
    values = np.array([r.values for _, r in rows], dtype=np.float32).reshape(
        len(rows), contract.N_FEATURES
    )
    for v, view in enumerate(contract.VIEWS):
        times = pd.to_datetime([r.event_times_ns[v] for _, r in rows], utc=True, unit="ns")
        status = np.array([_status(r.sources[v], r.reasons[v]) for _, r in rows], dtype=np.int32)
        for feature in view.features:
            name = feature_column(view.name, feature)
            columns[name] = values[:, contract.FEATURE_INDEX[feature]]
            columns[f"{name}__timestamp"] = times.astype("datetime64[us, UTC]")
            columns[f"{name}__status"] = status
    logged = pd.to_datetime([r.served_at_ns for _, r in rows], utc=True, unit="ns")
    columns[LOG_TIMESTAMP] = logged.astype("datetime64[us, UTC]")
    columns[LOG_DATE] = pd.Series(logged.date, dtype=object)
    columns[REQUEST_ID] = pd.Series([rid for rid, _ in rows], dtype=object)
    for v, view in enumerate(contract.VIEWS):
        columns[f"{view.name}__source"] = pd.Series([r.sources[v] for _, r in rows], dtype=object)
        columns[f"{view.name}__fallback_reason"] = pd.Series(
            [r.reasons[v] for _, r in rows], dtype=object
        )
    columns["from_cache"] = np.array([r.from_cache for _, r in rows], dtype=bool)
    return pd.DataFrame(columns)


def _status(source: str, reason: str) -> int:
    return 1 if source == "online_store" else _STATUS.get(reason, 0)


def drain_served_log(
    data_dir: Path, redis: RedisAddress | None, project: str = contract.PROJECT
) -> ServedLogSync:
    """Move every entry of the served stream into parquet parts (module docstring)."""
    if redis is None:
        return ServedLogSync()
    client = redis.connect()
    key = stream_key(project)
    drained = recorded = malformed = 0
    try:
        while True:
            entries = client.xrange(key, "-", "+", count=_BATCH)
            if not entries:
                break
            rows: list[tuple[str, ServedRow]] = []
            for entry_id, fields in entries:
                try:
                    batch = decode_batch(fields)
                except (KeyError, ValueError, IndexError, UnicodeDecodeError, struct.error):
                    malformed += 1
                    continue
                first = entry_id.decode()
                rows += [(f"{first}-{i}", row) for i, row in enumerate(batch)]
            if rows:
                _write_parts(data_dir, served_frame(rows))
            client.xdel(key, *[entry_id for entry_id, _ in entries])
            drained += len(entries)
            recorded += len(rows)
            if len(entries) < _BATCH:
                break
    finally:
        client.close()
    return ServedLogSync(drained, recorded, malformed)


def _write_parts(data_dir: Path, frame: pd.DataFrame) -> None:
    for day, part in frame.groupby(LOG_DATE, sort=True):
        first = str(part[REQUEST_ID].iloc[0])
        path = log_dir(data_dir) / f"{LOG_DATE}={day}" / f"part-{first}.parquet"
        atomic_write(path, _parquet_writer(part))


def _parquet_writer(frame: pd.DataFrame) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        frame.to_parquet(tmp, index=False)

    return write


def read_served_log(
    data_dir: Path, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Recorded answers with ``start <= __log_timestamp <= end``, one row per request id, by
    log time (an empty frame when none)."""
    folder = log_dir(data_dir)
    parts = []
    for path in sorted(folder.glob(f"{LOG_DATE}=*/part-*.parquet")):
        day = path.parent.name.split("=", 1)[1]
        if start is not None and day < start.date().isoformat():
            continue
        if end is not None and day > end.date().isoformat():
            continue
        parts.append(pd.read_parquet(path))
    if not parts:
        return served_frame([])
    frame = pd.concat(parts, ignore_index=True).drop_duplicates(REQUEST_ID, keep="first")
    stamp = frame[LOG_TIMESTAMP]
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= (stamp >= pd.Timestamp(start)).to_numpy()
    if end is not None:
        keep &= (stamp <= pd.Timestamp(end)).to_numpy()
    return frame[keep].sort_values(LOG_TIMESTAMP, kind="stable").reset_index(drop=True)
