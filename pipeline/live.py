"""Live mode: keep the online store fresh by appending simulated real-time bars.

What enters: a materialized repository (the pipeline ran), its data folder and a clock.
What leaves: every few seconds, new 5-minute bars in ``data/raw``, their rows in the offline
tables (parquet, or PostgreSQL when given its address: L0 and L1 both) and, through
incremental materialization, in Redis -- the production schedule (L1 + materialize every 5
minutes in session), compressed to a tick of a few seconds.

Why it exists. The history follows the session calendar (Mon-Fri, 13:00-18:00 UTC), and the
views have TTLs of 24 h (technical, macro) and 1 h (state). A quick start run on Sunday, or on
a weekday evening, would otherwise serve only expired data -- correctly. To show fresh data at
any hour or weekday, honestly, the live mode simulates an always-open market:

1. Catch-up: for every completed 5-minute slot (aligned to the clock, ``open + 5 min <= now``)
   after the last bar, append one bar, at most ``catchup_bars`` (default 12, one hour: enough
   for every view's TTL, including state's 1 h) -- older slots stay a gap in the history, like a
   session break.
2. Ticking: every ``tick_s`` seconds, append the bar of each slot completed since the last tick.
3. Refill: when ``store_lost(now)`` says the online store lost some view of some symbol (a
   Redis restarted empty or flushed, even if a PushState wrote the state view back since;
   ``pipeline.online_watch`` checks every view's presence and age), the step re-materializes
   every view over its last TTL, so the server reads the store again within one tick instead
   of the next 5-minute slot.

Bars come from ``market_data.generator.next_bars`` (each symbol's path continues from its last
close) and macro prints from ``extend_macro`` (one per weekday up to yesterday: a print is known
after its day closes). Each step runs L1 for the new rows only and materializes the views from
the earliest new event time to ``now``. These bars are simulated outside session hours: the
features show it (``time_normalized`` is clipped to 0 or 1 there) and nothing pretends otherwise.

Time comes from an injectable clock (``clock`` or ``step(now)``), so tests never depend on the
wall clock or the weekday.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from market_data import files
from market_data.generator import extend_macro, next_bars
from market_data.session import BAR_MINUTES
from offline_store.factory import open_store
from offline_store.store import OfflineRefresh, OfflineStore
from online_store.address import RedisAddress
from pipeline.materialize import ViewMaterialization, materialize_incremental
from pipeline.served_log import drain_served_log
from pipeline.settings import PipelineSettings
from pipeline.state_events import StateSync, earliest, sync_state_events

if TYPE_CHECKING:
    from feast import FeatureStore

Clock = Callable[[], datetime]
"""Returns the current time, tz-aware UTC."""

BAR = timedelta(minutes=BAR_MINUTES)
DEFAULT_CATCHUP_BARS: int = PipelineSettings.live_catchup_bars
DEFAULT_TICK_S: float = PipelineSettings.live_tick_s
"""The defaults live in pipeline.settings, once."""


def wall_clock() -> datetime:
    """The real time, tz-aware UTC (the default clock outside tests)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class LiveStep:
    """What one live step did."""

    now: datetime
    bar_opens: tuple[datetime, ...]
    """Opens of the bars appended (per symbol), ascending; empty when no slot completed."""
    offline: OfflineRefresh | None
    """L1 for the new rows; None when nothing was appended."""
    materialized: tuple[ViewMaterialization, ...]
    """Per view, the materialization window; empty when nothing was appended or refilled."""
    refilled: bool = False
    """The online store had lost its rows: every view was re-materialized over its last TTL."""
    pushes: StateSync = field(default_factory=StateSync)
    """The agent's pushes recorded offline first (``pipeline.state_events``)."""


def due_bar_opens(last_open: datetime, now: datetime, max_bars: int) -> list[datetime]:
    """Opens of the 5-minute slots after ``last_open`` that completed by ``now``, at most the
    latest ``max_bars`` of them. Slots are aligned to the clock (minute divisible by 5)."""
    if max_bars < 1:
        raise ValueError(f"max_bars must be >= 1, got {max_bars}")
    step_s = int(BAR.total_seconds())
    epoch_s = int(now.timestamp())
    latest = datetime.fromtimestamp(epoch_s - epoch_s % step_s, UTC) - BAR  # its slot ended <= now
    opens: list[datetime] = []
    moment = latest
    while moment > last_open and len(opens) < max_bars:
        opens.append(moment)
        moment -= BAR
    return opens[::-1]


class LiveFeed:
    """Appends simulated real-time bars and materializes them (see the module docstring).

    >>> feed = LiveFeed(data_dir, store, seed=7)   # after run_pipeline
    >>> feed.step()                                # catch-up to now
    >>> feed.run(stop_event, tick_s=5.0)           # until stop_event is set
    """

    def __init__(  # noqa: PLR0913 - the feed's keyword-only options
        self,
        data_dir: Path,
        store: FeatureStore,
        *,
        seed: int = PipelineSettings.seed,
        catchup_bars: int = DEFAULT_CATCHUP_BARS,
        clock: Clock = wall_clock,
        store_lost: Callable[[datetime], bool] | None = None,
        offline: OfflineStore | None = None,
        redis: RedisAddress | None = None,
    ) -> None:
        self._data_dir = Path(data_dir)
        self._redis = redis
        self._offline = offline or open_store(self._data_dir)
        self._store = store
        self._seed = seed
        self._catchup_bars = catchup_bars
        self._clock = clock
        self._store_lost = store_lost
        self._bars = files.read_bars(files.bars_path(self._data_dir))
        self._macro = files.read_macro(files.macro_path(self._data_dir))

    @property
    def last_bar_open(self) -> datetime:
        """Open of the latest bar of any symbol."""
        latest = pd.Timestamp(self._bars["time"].max())
        moment: datetime = latest.to_pydatetime()
        return moment

    def step(self, now: datetime | None = None) -> LiveStep:
        """Append the bars of every completed slot since the last bar, then L1 + materialize."""
        now = self._clock() if now is None else now
        if now.tzinfo is None:
            raise ValueError(f"now must be tz-aware (UTC), got naive {now!r}")
        lost = self._store_lost is not None and self._store_lost(now)
        pushes = sync_state_events(self._offline, self._redis, self._store.project, created=now)
        drain_served_log(self._data_dir, self._redis, self._store.project)
        opens = due_bar_opens(self.last_bar_open, now, self._catchup_bars)
        if not opens:
            if lost or pushes.earliest_changed is not None:
                done = materialize_incremental(
                    self._store, now, since=pushes.earliest_changed, refill=lost
                )
                return LiveStep(now, (), None, done, refilled=lost, pushes=pushes)
            return LiveStep(now, (), None, (), pushes=pushes)
        self._extend_macro(now)
        new = next_bars(self._bars, opens, self._seed)
        self._bars = pd.concat([self._bars, new], ignore_index=True).sort_values(
            ["symbol", "time"], kind="stable", ignore_index=True
        )
        files.write_bars(files.bars_path(self._data_dir), self._bars)
        offline = self._offline.append(self._bars, new, self._macro, created=now)
        materialized = materialize_incremental(
            self._store,
            now,
            since=earliest(offline.earliest_new, pushes.earliest_changed),
            refill=lost,
        )
        return LiveStep(now, tuple(opens), offline, materialized, refilled=lost, pushes=pushes)

    def run(
        self,
        stop: threading.Event,
        tick_s: float = DEFAULT_TICK_S,
        on_step: Callable[[LiveStep], None] | None = None,
    ) -> None:
        """Call :meth:`step` every ``tick_s`` seconds until ``stop`` is set."""
        while not stop.is_set():
            result = self.step()
            if on_step is not None:
                on_step(result)
            stop.wait(tick_s)

    def _extend_macro(self, now: datetime) -> None:
        # A bar on day D reads the print of the latest weekday strictly before D.
        yesterday = (pd.Timestamp(now).tz_convert("UTC") - pd.Timedelta(days=1)).date()
        extended = extend_macro(self._macro, yesterday, self._seed)
        if len(extended) != len(self._macro):
            files.write_macro(files.macro_path(self._data_dir), extended)
            self._macro = files.read_macro(files.macro_path(self._data_dir))
