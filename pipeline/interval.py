"""The pipeline cut into a scheduler's steps, each over one data interval ``[start, end)``.

What enters: the settings (folders, history, seed, symbols), the interval of one scheduled run
(tz-aware) and, for L1b, the Redis address. What leaves:
- :func:`ingest_l0`: ``data/raw`` covering the interval -- generated (history ending at ``end``)
  when no raw files exist, else extended by the session bars that closed by ``end`` after the
  last stored bar (plus the macro prints known by then);
- :func:`build_l1`: the offline tables holding a row for every raw bar (rows only added);
- :func:`materialize_interval`: the rows with event time in ``[start, end)`` written to Redis for
  every view, after checking that the registry's contract hash is the code's. Half-open like
  Airflow's data intervals (Feast's own ``materialize`` includes ``end``): the bar that closes
  exactly at ``end`` belongs to the next interval, so consecutive runs never overlap;
- :func:`materialize_up_to`: a manual run's L1b, which has no interval -- every view from where
  its last materialization ended up to the trigger time, after the same contract check.

Idempotence: each step is a no-op the second time for the same interval -- L0 appends only bars
it does not have, L1 only rows it does not have, and Feast skips a row that is not newer than the
stored one (so a backfill of an older interval never overwrites newer data either). Feast apply
is not a scheduled step: the registry is deployed with the code (``python -m pipeline apply``),
and L1b refuses to materialize through a registry whose contract differs from its own.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from market_data import files
from market_data.generator import extend_macro, next_bars
from market_data.session import BAR_MINUTES, session_bar_opens
from offline_store.factory import open_store
from offline_store.store import OfflineRefresh
from online_store.address import RedisAddress
from pipeline.materialize import (
    VIEW_NAMES,
    OnlineWriteCounter,
    ViewMaterialization,
    materialize_incremental,
)
from pipeline.raw_data import ensure_raw_data
from pipeline.registry_file import read_registry, registry_path, require_contract_match
from pipeline.served_log import drain_served_log
from pipeline.settings import PipelineSettings
from pipeline.state_events import sync_state_events

BAR = timedelta(minutes=BAR_MINUTES)
_FEAST_END_INCLUSIVE = timedelta(microseconds=1)
"""Feast keeps rows with ``event_time <= end_date``; one microsecond less makes it ``< end``."""


@dataclass(frozen=True)
class Interval:
    """A scheduled run's data interval, ``[start, end)``, tz-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name, moment in (("start", self.start), ("end", self.end)):
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValueError(f"interval {name} must be tz-aware (UTC), got {moment!r}")
        if not self.start < self.end:
            raise ValueError(f"interval start {self.start} must be before end {self.end}")

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


@dataclass(frozen=True)
class IngestResult:
    """What L0 did."""

    generated: bool
    """True when the history was generated (no raw files existed)."""
    appended: int
    """Bars appended to existing files (all symbols)."""
    bars: int
    """Bars stored now (all symbols)."""


def ingest_l0(settings: PipelineSettings, interval: Interval) -> IngestResult:
    """Make ``data/raw`` cover every session bar that closed by ``interval.end``."""
    data_dir = settings.data_dir
    bars_file, macro_file = files.bars_path(data_dir), files.macro_path(data_dir)
    if not bars_file.exists() or not macro_file.exists():
        raw = ensure_raw_data(
            data_dir,
            interval.end,
            days=settings.history_days,
            seed=settings.seed,
            symbols=settings.symbols,
        )
        return IngestResult(generated=True, appended=0, bars=len(raw.bars))
    bars, macro = files.read_bars(bars_file), files.read_macro(macro_file)
    last_open: datetime = pd.Timestamp(bars["time"].max()).to_pydatetime()
    opens = [
        moment
        for offset in range((interval.end.date() - last_open.date()).days + 1)
        for moment in session_bar_opens(last_open.date() + timedelta(days=offset))
        if last_open < moment and moment + BAR <= interval.end
    ]
    if opens:
        yesterday = (pd.Timestamp(interval.end).tz_convert("UTC") - pd.Timedelta(days=1)).date()
        extended = extend_macro(macro, yesterday, settings.seed)
        if len(extended) != len(macro):
            files.write_macro(macro_file, extended)
        new = next_bars(bars, opens, settings.seed)
        bars = pd.concat([bars, new], ignore_index=True).sort_values(
            ["symbol", "time"], kind="stable", ignore_index=True
        )
        files.write_bars(bars_file, bars)
    return IngestResult(
        generated=False, appended=len(opens) * len(settings.symbols), bars=len(bars)
    )


def build_l1(
    settings: PipelineSettings, interval: Interval, redis: RedisAddress | None = None
) -> OfflineRefresh:
    """Record the agent's pushes held in ``redis`` (``pipeline.state_events``), then add the
    offline rows of raw bars that have none yet (``created`` = the interval's end)."""
    data_dir = settings.data_dir
    offline = open_store(data_dir)
    sync_state_events(offline, redis, created=interval.end)
    drain_served_log(data_dir, redis)
    bars = files.read_bars(files.bars_path(data_dir))
    macro = files.read_macro(files.macro_path(data_dir))
    return offline.append(bars, bars, macro, created=interval.end)


@dataclass(frozen=True)
class IntervalMaterialization:
    """What L1b did."""

    views: tuple[str, ...]
    interval: Interval
    contract_hash: str
    """The hash the registry and the code agreed on."""
    materialized: tuple[ViewMaterialization, ...] = ()
    """Per view: its window, wall time and rows written (for the pipeline's metrics)."""


def materialize_interval(
    settings: PipelineSettings, redis: RedisAddress, interval: Interval
) -> IntervalMaterialization:
    """Check the registry's contract, then ``materialize(start, end)`` every view.

    Raises registry_file.RegistryError (no registry) or ContractMismatchError before anything
    is written to Redis.
    """
    where = registry_path(settings.data_dir, settings.offline_store)
    service = require_contract_match(read_registry(where), where)
    from pipeline.feast_repo import open_feature_store

    # The pushes since L1 ran first: the rows materialized carry the agent's position.
    sync_state_events(open_store(settings.data_dir), redis, created=interval.end)
    store = open_feature_store(settings.repo_dir, redis)
    writes = OnlineWriteCounter(store)
    done = []
    for name in VIEW_NAMES:
        began, before = time.perf_counter(), writes.rows.get(name, 0)
        # Feast prints a progress banner per call; the command prints one summary line instead.
        with contextlib.redirect_stdout(io.StringIO()):
            store.materialize(
                start_date=interval.start,
                end_date=interval.end - _FEAST_END_INCLUSIVE,
                feature_views=[name],
            )
        done.append(
            ViewMaterialization(
                view=name,
                start=interval.start,
                end=interval.end,
                ran=True,
                seconds=time.perf_counter() - began,
                rows_written=writes.rows.get(name, 0) - before if writes.counting else None,
            )
        )
    return IntervalMaterialization(
        views=VIEW_NAMES,
        interval=interval,
        contract_hash=service.tags["contract_hash"],
        materialized=tuple(done),
    )


@dataclass(frozen=True)
class UpToMaterialization:
    """What a manual L1b run (``materialize --up-to``) did."""

    now: datetime
    """The time every view was materialized up to (inclusive): the run's trigger time."""
    contract_hash: str
    """The hash the registry and the code agreed on."""
    materialized: tuple[ViewMaterialization, ...]
    """Per view: its window (``ran`` False when nothing lay after its last end), rows written."""


def materialize_up_to(
    settings: PipelineSettings, redis: RedisAddress, now: datetime
) -> UpToMaterialization:
    """Check the registry's contract, then materialize every view up to ``now``.

    A manual run (``airflow dags trigger`` without a logical date) has no data interval: it
    materializes incrementally, like ``feast materialize-incremental now`` but with ``now``
    given -- per view from its ``most_recent_end_time`` (the first time: ``now - ttl``) to
    ``now`` (``pipeline.materialize``). Feast skips rows not newer than Redis holds, so a
    manual run between scheduled ones overlaps them harmlessly. Raises like
    :func:`materialize_interval` before anything is written.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"--up-to must be tz-aware (UTC), got {now!r}")
    where = registry_path(settings.data_dir, settings.offline_store)
    service = require_contract_match(read_registry(where), where)
    from pipeline.feast_repo import open_feature_store

    # The pushes since L1 ran first: the rows materialized carry the agent's position.
    pushes = sync_state_events(open_store(settings.data_dir), redis, created=now)
    store = open_feature_store(settings.repo_dir, redis)
    return UpToMaterialization(
        now=now,
        contract_hash=service.tags["contract_hash"],
        materialized=materialize_incremental(store, now, since=pushes.earliest_changed),
    )
