"""One pipeline run: L0 raw data -> L1 offline tables -> Feast apply -> incremental materialize.

What enters: the Feast repository folder, the data folder beside it, the injected ``now``, the
Redis address and the offline store (``offline_store.store``: ``data/``'s parquet files by
default, or PostgreSQL, which then holds L0 and L1).
What leaves: Redis holding each view's latest row in Feast's layout (what ``observation_15d``
serves) and a :class:`PipelineResult` saying what each stage did.

Running it twice with the same ``now`` changes nothing: raw files are loaded, not regenerated;
unchanged offline tables are not rewritten; apply re-registers identical definitions; and every
view's materialization window is empty (it starts where the last one ended).

``feature_repo/feature_store.yaml`` refers to ``../data``, so ``data_dir`` must be the folder
named ``data`` beside ``repo_dir`` (a test copies ``feature_repo/`` into a temporary folder and
writes ``<tmp>/data``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from offline_store.factory import open_store
from offline_store.store import OfflineRefresh, OfflineStore
from online_store.address import RedisAddress
from pipeline.feast_repo import apply_definitions, open_feature_store
from pipeline.materialize import ViewMaterialization, materialize_incremental
from pipeline.raw_data import ensure_raw_data
from pipeline.settings import PipelineSettings
from pipeline.state_events import earliest, sync_state_events

if TYPE_CHECKING:
    from feast import FeatureStore


class RepoLayoutError(ValueError):
    """``data_dir`` is not the ``data`` folder that ``feature_store.yaml`` points at."""


@dataclass(frozen=True)
class PipelineResult:
    """What one run did, stage by stage."""

    raw_generated: bool
    """L0: True when raw files were generated (False: existing files were loaded)."""
    bars: int
    """L0: bars of all symbols."""
    offline: OfflineRefresh
    """L1: whether the offline tables were rewritten, and their row count."""
    applied: tuple[str, ...]
    """Names of the Feast objects applied."""
    materialized: tuple[ViewMaterialization, ...]
    """Per view, the materialization window and whether it ran."""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each stage (raw, offline, open, apply, materialize), seconds."""
    store: FeatureStore | None = field(default=None, compare=False, repr=False)
    """The FeatureStore the run used (reuse it to read the online store)."""

    def summary(self) -> str:
        """One line per stage, for the console."""
        raw = "generated" if self.raw_generated else "loaded"
        offline = "written" if self.offline.written else "unchanged"
        ran = [m.view for m in self.materialized if m.ran]
        windows = ", ".join(
            f"{m.view} {m.start:%Y-%m-%d %H:%M}..{m.end:%Y-%m-%d %H:%M}"
            for m in self.materialized
            if m.ran
        )
        secs = self.stage_seconds
        return "\n".join(
            [
                f"L0 raw data      {raw}: {self.bars} bars ({secs.get('raw', 0):.1f} s)",
                f"L1 offline       {offline}: {self.offline.rows} rows per view "
                f"({secs.get('offline', 0):.1f} s)",
                f"feast apply      {len(self.applied)} objects "
                f"({secs.get('open', 0) + secs.get('apply', 0):.1f} s, incl. importing feast)",
                f"materialize      {len(ran)} views {windows or '(nothing new)'} "
                f"({secs.get('materialize', 0):.1f} s)",
            ]
        )


def check_repo_layout(repo_dir: Path, data_dir: Path) -> None:
    """Raise RepoLayoutError unless ``data_dir`` is ``repo_dir/../data``."""
    expected = (Path(repo_dir).resolve().parent / "data").resolve()
    if Path(data_dir).resolve() != expected:
        raise RepoLayoutError(
            f"feature_store.yaml reads ../data relative to {repo_dir}, i.e. {expected}; "
            f"got data_dir={data_dir}. Put the data folder beside the feature repository."
        )


def run_pipeline(  # noqa: PLR0913 - the pipeline's settings, keyword-only
    repo_dir: Path,
    data_dir: Path,
    now: datetime,
    redis: RedisAddress,
    *,
    days: int = PipelineSettings.history_days,
    seed: int = PipelineSettings.seed,
    symbols: Sequence[str] = PipelineSettings.symbols,
    store: FeatureStore | None = None,
    refill: bool = False,
    offline: OfflineStore | None = None,
) -> PipelineResult:
    """Run L0 -> L1 -> apply -> materialize once at the injected ``now`` (tz-aware).

    ``store`` reuses an open FeatureStore of this repository. ``refill`` re-materializes the
    last TTL of every view whatever the registry says (for a Redis that started empty, like
    the quick start's embedded one, while data/registry.db survived from an earlier run).
    ``offline``: the offline store (the files under ``data_dir`` when None).
    """
    check_repo_layout(repo_dir, data_dir)
    offline = offline or open_store(data_dir)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        current = time.perf_counter()
        seconds[stage] = current - clock
        clock = current

    raw = ensure_raw_data(data_dir, now, days=days, seed=seed, symbols=symbols)
    lap("raw")
    pushes = sync_state_events(offline, redis, created=now)
    refreshed = offline.sync(raw.bars, raw.macro, created=now)
    lap("offline")
    store = store or open_feature_store(repo_dir, redis, offline)
    lap("open")
    applied = apply_definitions(store, repo_dir)
    lap("apply")
    since = earliest(refreshed.earliest_new, pushes.earliest_changed)
    materialized = materialize_incremental(store, now, since=since, refill=refill)
    lap("materialize")
    return PipelineResult(
        raw_generated=raw.generated,
        bars=len(raw.bars),
        offline=refreshed,
        applied=tuple(applied),
        materialized=materialized,
        stage_seconds=seconds,
        store=store,
    )


def prepare_offline_tables(
    settings: PipelineSettings, now: datetime, offline: OfflineStore
) -> None:
    """L0 -> L1 (what a training set needs): the offline tables of ``settings``' store, up to
    date with the raw files (generated first if there are none)."""
    check_repo_layout(settings.repo_dir, settings.data_dir)
    raw = ensure_raw_data(
        settings.data_dir,
        now,
        days=settings.history_days,
        seed=settings.seed,
        symbols=settings.symbols,
    )
    offline.sync(raw.bars, raw.macro, created=now)


def run_configured_pipeline(
    settings: PipelineSettings,
    redis: RedisAddress,
    now: datetime,
    offline: OfflineStore,
) -> PipelineResult:
    """:func:`run_pipeline` with the folders, history and symbols of ``settings``; a Redis the
    settings did not name (the embedded one, empty at start) is refilled. ``offline``: the
    offline store in use (``pipeline.quickstart.open_offline_store``)."""
    return run_pipeline(
        settings.repo_dir,
        settings.data_dir,
        now,
        redis,
        days=settings.history_days,
        seed=settings.seed,
        symbols=settings.symbols,
        refill=settings.redis is None,
        offline=offline,
    )
