"""The offline store behind one interface: what the pipeline, the doctor and the fallback call.

What enters: the data folder and, for the PostgreSQL store, its
:class:`~offline_store.connection.PostgresAddress` (:func:`open_store`, the one place that
chooses). What leaves: an :class:`OfflineStore` -- the parquet files under ``data/``
(``offline_store.files``) or the PostgreSQL tables (``offline_store.postgres``) -- whose callers
never ask which one it is: L0 and L1 written from the raw frames (:meth:`OfflineStore.sync`,
:meth:`OfflineStore.append`) with an :class:`OfflineRefresh` saying what changed, the L1 tables
and the raw frames read back, the agent's recorded pushes (``state_events``) appended and read,
the raw window and change signature the server's fallback polls, a health check for the
doctor, and the Feast configuration (yaml and variables) that reads the same tables.

Light at import: no pandas, psycopg or Feast here nor in the two implementations' modules (the
server's fallback opens a store at start-up); their work is imported when first called.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from core.settings import about, parse_choice

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from canonical.builder import CanonicalFeatureBuilder
    from market_data.series import Bars, MacroDaily
    from offline_store.connection import PostgresAddress

StoreKind = Literal["file", "postgres"]
"""``FEAST_OFFLINE_STORE_TYPE``'s values: Feast's name of each store."""

OFFLINE_STORE_VARIABLE = about(
    "FEAST_OFFLINE_STORE_TYPE",
    "offline store of L0/L1 and Feast: file (parquet) or postgres",
    parse=lambda name, raw: parse_choice(name, raw, ("file", "postgres")),
)
"""``FEAST_OFFLINE_STORE_TYPE``, declared once (the pipeline's settings read it by this)."""
FEAST_KIND_VARIABLE: str = OFFLINE_STORE_VARIABLE["env"]
"""The variable ``feature_repo/features.py`` reads to choose its sources."""


@dataclass(frozen=True)
class OfflineRefresh:
    """What an L1 step did."""

    written: bool
    """True when at least one table was (re)written."""
    rows: int
    """Rows per view now stored (all symbols)."""
    added: int
    """Rows per view added by this step (for a full rebuild: rows that were not stored)."""
    earliest_new: datetime | None
    """Earliest event time among the added or changed rows; None when there are none."""


@dataclass(frozen=True)
class Health:
    """The doctor's line about the store."""

    name: str
    """e.g. ``offline store (files)``."""
    ok: bool
    detail: str
    fix: str = ""
    """What to do when not ok."""


class OfflineStore(Protocol):
    """L0 and L1 of the pipeline, and the agent's recorded pushes."""

    @property
    def kind(self) -> StoreKind:
        """Feast's name of the store (``feature_store.yaml`` variant, registry file, sources)."""
        ...

    @property
    def data_dir(self) -> Path:
        """The data folder: the raw landing files, the served log and Feast's registry (both
        stores keep these there)."""
        ...

    @property
    def database(self) -> PostgresAddress | None:
        """The database holding L0, for another process to read it itself (the server's
        fallback); None when L0 is the landing files."""
        ...

    def describe(self) -> str:
        """Where the store is, for logs (never a password)."""
        ...

    def sync(self, bars: pd.DataFrame, macro: pd.DataFrame, created: datetime) -> OfflineRefresh:
        """L0 stored, then every L1 table rebuilt from it (written only where rows changed)."""
        ...

    def append(
        self,
        bars: pd.DataFrame,
        new_bars: pd.DataFrame,
        macro: pd.DataFrame,
        *,
        created: datetime,
        builder: CanonicalFeatureBuilder | None = None,
    ) -> OfflineRefresh:
        """``new_bars`` and ``macro`` into L0, then the L1 rows of bars newer than each symbol's
        last stored row (``bars``: the whole history the builder's window is cut from)."""
        ...

    def read_raw(self, symbols: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """L0 bars (at least ``symbols``', all when None) and macro, ``market_data.schema``."""
        ...

    def read_feature_tables(
        self,
        symbols: Sequence[str],
        first_ns: int | None = None,
        last_ns: int | None = None,
    ) -> dict[str, pd.DataFrame]:
        """The L1 tables of ``symbols`` (view name -> ``symbol``, ``event_timestamp``,
        ``created`` and the features); with ``first_ns``/``last_ns`` (grid times), only rows a
        join over them can pick: event times in ``[first_ns - ttl, last_ns]``. Raises
        FileNotFoundError when L1 was never built."""
        ...

    def read_events(self) -> pd.DataFrame:
        """Every recorded push (``canonical.state_events.EVENT_COLUMNS``), by symbol, time."""
        ...

    def record_events(self, events: pd.DataFrame, created: datetime) -> pd.DataFrame:
        """Store the events (unique keys) not stored yet; returns those."""
        ...

    def rederive_state(self, since: datetime) -> datetime | None:
        """Re-derive the stored state rows at or after ``since`` from the recorded events; the
        earliest changed row's event time, None when none changed (or L1 is not built)."""
        ...

    def raw_signature(self) -> tuple[object, ...] | None:
        """Changes whenever L0 changes (the fallback polls it); None when L0 is not there,
        an exception when the store does not answer."""
        ...

    def read_raw_window(
        self, symbols: tuple[str, ...], last: int
    ) -> tuple[dict[str, Bars], MacroDaily]:
        """At least each symbol's latest ``last`` bars (symbols without bars left out) and the
        macro prints, as the builder reads them (the fallback's computation; blocking)."""
        ...

    def health(self) -> Health:
        """Does the store answer and hold L0 and L1 (the doctor)."""
        ...

    def feast_yaml(self, repo_dir: Path) -> Path:
        """The repository's ``feature_store*.yaml`` for this store."""
        ...

    def feast_env(self) -> dict[str, str]:
        """The variables that yaml and ``features.py`` expand (``FEAST_OFFLINE_STORE_TYPE``...)."""
        ...
