"""L1 of the pipeline: the offline feature tables Feast materializes from.

What enters: the raw bars and macro frames and a ``created`` time. What leaves: the three
``data_dir/offline/<view>.parquet`` tables (canonical.offline_tables), rewritten only when their
rows changed, or extended by the rows of newly appended bars (the live mode). The state view's
positions are the agent's recorded pushes where there are any (``pipeline.state_events``).

Idempotence: a rebuild whose rows equal the stored ones (every column but ``created``) leaves the
files untouched, so a second run changes nothing on disk and materialization sees the same rows.

Appending: the builder computes each row from the trailing ``min_bars`` bars only (batch and
latest window are the same function, bit for bit), so the rows of ``k`` new bars are computed
from the last ``min_bars + k`` bars instead of the whole history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from canonical import contract
from canonical.builder import CanonicalFeatureBuilder
from canonical.offline_tables import (
    apply_state_events,
    build_offline_tables,
    offline_table_path,
    write_offline_tables,
)
from market_data.session import BAR_MINUTES

_KEY = ["symbol", "event_timestamp"]


@dataclass(frozen=True)
class OfflineRefresh:
    """What an L1 step did."""

    written: bool
    """True when at least one table file was (re)written."""
    rows: int
    """Rows per view now stored (all symbols)."""
    added: int
    """Rows per view added by this step (for a full rebuild: rows that were not stored)."""
    earliest_new: datetime | None
    """Earliest event time among the added rows; None when none were added."""


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


def rows_after(
    bars: pd.DataFrame,
    macro: pd.DataFrame,
    created: datetime,
    last_event: pd.Series,
    builder: CanonicalFeatureBuilder | None = None,
) -> dict[str, pd.DataFrame] | None:
    """The L1 rows of every bar whose event time is after its symbol's ``last_event`` (symbol ->
    latest stored event time), computed from the trailing ``min_bars`` window only; None when
    there are no such bars. Rows at or before ``last_event`` may be included (callers filter or
    upsert them)."""
    builder = builder or CanonicalFeatureBuilder()
    bar_end = bars["time"] + pd.Timedelta(minutes=BAR_MINUTES)
    tails = []
    for symbol, group in bars.groupby("symbol", sort=True):
        seen = last_event.get(symbol)
        new_count = int((bar_end[group.index] > seen).sum()) if seen is not None else len(group)
        if new_count:
            tails.append(group.iloc[-(builder.min_bars + new_count) :])
    if not tails:
        return None
    return build_offline_tables(pd.concat(tails, ignore_index=True), macro, created, builder)


def _with_events(tables: dict[str, pd.DataFrame], data_dir: Path) -> dict[str, pd.DataFrame]:
    """The state rows' positions from the agent's recorded pushes (``pipeline.state_events``)."""
    from pipeline.state_events import read_events

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
