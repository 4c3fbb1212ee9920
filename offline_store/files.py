"""The file store: L0 and L1 as files under the data folder (the default offline store).

What enters: the data folder. What leaves: an :class:`~offline_store.store.OfflineStore` over
``data/raw`` (L0: the landing files ``market_data.files`` reads and writes, which the pipeline
generates or an operator drops in) and ``data/offline`` (L1 and the recorded pushes as parquet,
``offline_store.file_tables``), which Feast's file offline store reads through
``feature_repo/feature_store.yaml`` (one ``FileSource`` per view).

Light at import (the server's fallback opens one at start-up): pandas comes with
``offline_store.file_tables`` and the fallback's reader (``market_data.columnar``: pyarrow,
no pandas) on their first call.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from market_data import files
from offline_store.store import FEAST_KIND_VARIABLE, Health, OfflineRefresh, StoreKind

if TYPE_CHECKING:
    import pandas as pd

    from canonical.builder import CanonicalFeatureBuilder
    from market_data.series import Bars, MacroDaily
    from offline_store.connection import PostgresAddress

FEAST_YAML = "feature_store.yaml"
"""The repository's configuration with the file offline store."""


@dataclass(frozen=True)
class FileOfflineStore:
    """The parquet files under ``data_dir`` (``OfflineStore``)."""

    data_dir: Path

    @property
    def kind(self) -> StoreKind:
        return "file"

    @property
    def database(self) -> PostgresAddress | None:
        return None

    def describe(self) -> str:
        return f"files under {self.data_dir}"

    def sync(self, bars: pd.DataFrame, macro: pd.DataFrame, created: datetime) -> OfflineRefresh:
        # L0 is the landing files themselves: only L1 is written.
        from offline_store.file_tables import refresh_offline_tables

        return refresh_offline_tables(self.data_dir, bars, macro, created)

    def append(
        self,
        bars: pd.DataFrame,
        new_bars: pd.DataFrame,
        macro: pd.DataFrame,
        *,
        created: datetime,
        builder: CanonicalFeatureBuilder | None = None,
    ) -> OfflineRefresh:
        # ``new_bars`` are already in the landing files (and in ``bars``).
        from offline_store.file_tables import append_offline_rows

        return append_offline_rows(self.data_dir, bars, macro, created, builder)

    def read_raw(self, symbols: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        from offline_store.file_tables import read_raw

        return read_raw(self.data_dir, symbols)

    def read_feature_tables(
        self,
        symbols: Sequence[str],
        first_ns: int | None = None,
        last_ns: int | None = None,
    ) -> dict[str, pd.DataFrame]:
        from offline_store.file_tables import read_feature_tables

        return read_feature_tables(self.data_dir, symbols, first_ns, last_ns)

    def read_events(self) -> pd.DataFrame:
        from offline_store.file_tables import read_events

        return read_events(self.data_dir)

    def record_events(self, events: pd.DataFrame, created: datetime) -> pd.DataFrame:
        from offline_store.file_tables import record_events

        return record_events(self.data_dir, events)

    def rederive_state(self, since: datetime) -> datetime | None:
        # The whole state table is one file: it is re-derived whole.
        from offline_store.file_tables import rederive_state

        return rederive_state(self.data_dir)

    def raw_signature(self) -> tuple[object, ...] | None:
        """(mtime, size) of the two landing files; None when one is missing."""
        try:
            stats = [os.stat(path) for path in self._raw_paths()]
        except OSError:
            return None
        return tuple((s.st_mtime_ns, s.st_size) for s in stats)

    def read_raw_window(
        self, symbols: tuple[str, ...], last: int
    ) -> tuple[dict[str, Bars], MacroDaily]:
        # The whole history, read into numpy (no pandas); the builder reads its last window.
        from market_data import columnar

        bars_path, macro_path = self._raw_paths()
        return columnar.read_bars(bars_path, symbols), columnar.read_macro(macro_path)

    def health(self) -> Health:
        from canonical import contract
        from canonical.offline_tables import offline_table_path

        name = "offline store (files)"
        if not self.data_dir.is_dir():
            return Health(
                name,
                False,
                f"data folder {self.data_dir} does not exist (the server's fallback has no data "
                "either)",
                "set USDCOP_DATA_DIR to the data folder, or build it (`python -m pipeline run`)",
            )
        wanted = [*self._raw_paths()]
        wanted += [offline_table_path(self.data_dir, v.name) for v in contract.VIEWS]
        missing = [str(p) for p in wanted if not p.is_file()]
        if missing:
            return Health(
                name,
                False,
                f"missing: {', '.join(missing)}",
                "run L0 and L1 for the interval (`airflow dags trigger v3.l0_ingest` then "
                "`v3.l1_features`, or `python -m pipeline l0|l1 --start T --end T`)",
            )
        return Health(name, True, f"{len(wanted)} files in {self.data_dir}")

    def feast_yaml(self, repo_dir: Path) -> Path:
        return Path(repo_dir).resolve() / FEAST_YAML

    def feast_env(self) -> dict[str, str]:
        return {FEAST_KIND_VARIABLE: self.kind}

    def _raw_paths(self) -> tuple[Path, Path]:
        return files.bars_path(self.data_dir), files.macro_path(self.data_dir)
