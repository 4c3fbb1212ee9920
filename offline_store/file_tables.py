"""The file store's tables: L1 and the recorded pushes as parquet files under ``data/``.

What enters: the data folder, the raw bars and macro frames (L0: the landing files under
``data/raw``, ``market_data.files``) and a ``created`` time; the agent's pushes to record. What
leaves: the three ``data_dir/offline/<view>.parquet`` tables (canonical.offline_tables),
rewritten only when their rows changed, or extended by the rows of newly appended bars (the
live mode); ``data_dir/offline/state_events.parquet``; and every one of them read back. The
state view's positions are the agent's recorded pushes where there are any.

Idempotence: a rebuild whose rows equal the stored ones (every column but ``created``) leaves the
files untouched, so a second run changes nothing on disk and materialization sees the same rows.

Appending: the builder computes each row from the trailing ``min_bars`` bars only (batch and
latest window are the same function, bit for bit), so the rows of ``k`` new bars are computed
from the last ``min_bars + k`` bars instead of the whole history.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from canonical import contract
from canonical.builder import CanonicalFeatureBuilder
from canonical.offline_tables import (
    apply_state_events,
    build_offline_tables,
    events_frame,
    offline_table_path,
    write_offline_tables,
)
from canonical.state_events import EVENT_COLUMNS
from market_data import files
from market_data.files import atomic_write
from offline_store.l1_rows import rows_after, state_changed
from offline_store.store import OfflineRefresh

EVENTS_TABLE = "state_events"
_KEY = ["symbol", "event_timestamp"]


def read_offline_tables(data_dir: Path) -> dict[str, pd.DataFrame] | None:
    """The stored tables (view name -> frame), or None when any of them is missing."""
    paths = {v.name: offline_table_path(data_dir, v.name) for v in contract.VIEWS}
    if not all(p.exists() for p in paths.values()):
        return None
    return {name: pd.read_parquet(path) for name, path in paths.items()}


def refresh_offline_tables(
    data_dir: Path, bars: pd.DataFrame, macro: pd.DataFrame, created: datetime
) -> OfflineRefresh:
    """Rebuild every table from the full history; write only when the rows differ."""
    fresh = _with_events(build_offline_tables(bars, macro, created), data_dir)
    stored = read_offline_tables(data_dir)
    rows = len(fresh[contract.VIEWS[0].name])
    if stored is not None and all(_same_rows(stored[n], fresh[n]) for n in fresh):
        return OfflineRefresh(written=False, rows=rows, added=0, earliest_new=None)
    write_offline_tables(data_dir, fresh)
    new = _new_event_times(stored, fresh)
    return OfflineRefresh(
        written=True,
        rows=rows,
        added=len(new),
        earliest_new=new.min().to_pydatetime() if len(new) else None,
    )


def append_offline_rows(
    data_dir: Path,
    bars: pd.DataFrame,
    macro: pd.DataFrame,
    created: datetime,
    builder: CanonicalFeatureBuilder | None = None,
) -> OfflineRefresh:
    """Add the rows of bars newer than each symbol's last stored row (the live mode's L1).

    Falls back to :func:`refresh_offline_tables` when no tables are stored yet.
    """
    stored = read_offline_tables(data_dir)
    if stored is None:
        return refresh_offline_tables(data_dir, bars, macro, created)
    last_event = stored[contract.VIEWS[0].name].groupby("symbol")["event_timestamp"].max()
    computed = rows_after(bars, macro, created, last_event, builder)
    if computed is not None:
        computed = _with_events(computed, data_dir)
    if computed is None:
        rows = len(stored[contract.VIEWS[0].name])
        return OfflineRefresh(written=False, rows=rows, added=0, earliest_new=None)
    merged = {}
    for name, frame in computed.items():
        old = stored[name]
        newest = old.groupby("symbol")["event_timestamp"].max()
        cutoff = frame["symbol"].map(newest)
        added = frame[cutoff.isna() | (frame["event_timestamp"] > cutoff)]
        merged[name] = (
            pd.concat([old, added], ignore_index=True)
            .sort_values(_KEY, kind="stable")
            .reset_index(drop=True)
        )
    write_offline_tables(data_dir, merged)
    new = _new_event_times(stored, merged)
    return OfflineRefresh(
        written=True,
        rows=len(merged[contract.VIEWS[0].name]),
        added=len(new),
        earliest_new=new.min().to_pydatetime() if len(new) else None,
    )


def _with_events(tables: dict[str, pd.DataFrame], data_dir: Path) -> dict[str, pd.DataFrame]:
    """The state rows' positions from the agent's recorded pushes."""
    state = contract.STATE.name
    return {**tables, state: apply_state_events(tables[state], read_events(data_dir))}


def _same_rows(stored: pd.DataFrame, fresh: pd.DataFrame) -> bool:
    columns = [c for c in fresh.columns if c != "created"]
    if list(stored.columns) != list(fresh.columns) or len(stored) != len(fresh):
        return False
    left = stored[columns].reset_index(drop=True)
    right = fresh[columns].reset_index(drop=True)
    return bool(left.equals(right))


def _new_event_times(
    stored: dict[str, pd.DataFrame] | None, now_stored: dict[str, pd.DataFrame]
) -> pd.Series:
    """Event times of rows in ``now_stored`` whose (symbol, event time) was not stored before."""
    current = now_stored[contract.VIEWS[0].name][_KEY]
    if stored is None:
        return current["event_timestamp"]
    before = stored[contract.VIEWS[0].name][_KEY]
    joined = current.merge(before, on=_KEY, how="left", indicator=True)
    return joined.loc[joined["_merge"] == "left_only", "event_timestamp"]


def read_raw(
    data_dir: Path, symbols: Sequence[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The landing files' bars (only ``symbols``' when given) and macro prints."""
    bars = files.read_bars(files.bars_path(data_dir))
    if symbols is not None:
        bars = bars[bars["symbol"].isin(list(symbols))]
    return bars, files.read_macro(files.macro_path(data_dir))


def read_feature_tables(
    data_dir: Path,
    symbols: Sequence[str],
    first_ns: int | None = None,
    last_ns: int | None = None,
) -> dict[str, pd.DataFrame]:
    """The three tables of ``symbols`` (``OfflineStore.read_feature_tables``), read with
    parquet filters: only the rows (and columns) asked for leave the files."""
    wanted = list(symbols)
    tables: dict[str, pd.DataFrame] = {}
    for view in contract.VIEWS:
        path = offline_table_path(data_dir, view.name)
        if not path.exists():
            raise FileNotFoundError(f"no offline tables under {data_dir} (run the pipeline first)")
        filters: list[tuple[str, str, Any]] = [("symbol", "in", wanted)]
        if first_ns is not None:
            filters.append(("event_timestamp", ">=", pd.Timestamp(first_ns, tz="UTC") - view.ttl))
        if last_ns is not None:
            filters.append(("event_timestamp", "<=", pd.Timestamp(last_ns, tz="UTC")))
        tables[view.name] = pd.read_parquet(
            path,
            columns=["symbol", "event_timestamp", "created", *view.features],
            filters=filters,
        )
    return tables


def events_path(data_dir: Path) -> Path:
    """``data_dir/offline/state_events.parquet``."""
    return offline_table_path(data_dir, EVENTS_TABLE)


def read_events(data_dir: Path) -> pd.DataFrame:
    """Every recorded event (``EVENT_COLUMNS``), by symbol then event time."""
    path = events_path(data_dir)
    if not path.exists():
        return events_frame([])
    return pd.read_parquet(path)[list(EVENT_COLUMNS)]


def record_events(data_dir: Path, events: pd.DataFrame) -> pd.DataFrame:
    """Store the events (unique keys) not stored yet; returns those."""
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


def rederive_state(data_dir: Path) -> datetime | None:
    """Re-derive the stored state rows from the recorded events; the earliest changed one."""
    path = offline_table_path(data_dir, contract.STATE.name)
    if not path.exists():
        return None  # L1 has not run yet: it derives the rows when it does
    stored = pd.read_parquet(path)
    derived = apply_state_events(stored, read_events(data_dir))
    changed = state_changed(stored, derived)
    if not changed.any():
        return None
    write_offline_tables(data_dir, {contract.STATE.name: derived})
    moment: datetime = pd.Timestamp(derived.loc[changed, "event_timestamp"].min()).to_pydatetime()
    return moment
