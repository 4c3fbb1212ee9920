"""The PostgreSQL store: L0 and L1 in a PostgreSQL database (``FEAST_OFFLINE_STORE_TYPE=postgres``).

What enters: the data folder (the raw landing files L0 is loaded from, the served log, Feast's
registry) and the database's :class:`~offline_store.connection.PostgresAddress`. What leaves:
an :class:`~offline_store.store.OfflineStore` over the tables of ``offline_store/sql``
(``offline_store.postgres_tables`` writes them, ``offline_store.read`` reads them back), which
Feast's postgres offline store reads through ``feature_repo/feature_store.postgres.yaml`` (one
``PostgreSQLSource`` per view).

Light at import (the server's fallback opens one at start-up): psycopg and pandas come with
the modules each method imports on its first call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from canonical import contract
from offline_store.connection import PostgresAddress
from offline_store.store import FEAST_KIND_VARIABLE, Health, OfflineRefresh, StoreKind

if TYPE_CHECKING:
    import pandas as pd

    from canonical.builder import CanonicalFeatureBuilder
    from market_data.series import Bars, MacroDaily

FEAST_YAML = "feature_store.postgres.yaml"
"""The repository's configuration with the PostgreSQL offline store."""
TABLES = ("usdcop_5m", "macro_daily", *(v.name for v in contract.VIEWS))
"""The L0 and L1 tables (the doctor wants rows in each)."""


@dataclass(frozen=True)
class PostgresOfflineStore:
    """The tables of the database at ``address`` (``OfflineStore``)."""

    data_dir: Path
    address: PostgresAddress

    @property
    def kind(self) -> StoreKind:
        return "postgres"

    @property
    def database(self) -> PostgresAddress | None:
        return self.address

    def describe(self) -> str:
        return str(self.address)

    def sync(self, bars: pd.DataFrame, macro: pd.DataFrame, created: datetime) -> OfflineRefresh:
        from offline_store.postgres_tables import sync_postgres

        return sync_postgres(self.address, bars, macro, created)

    def append(
        self,
        bars: pd.DataFrame,
        new_bars: pd.DataFrame,
        macro: pd.DataFrame,
        *,
        created: datetime,
        builder: CanonicalFeatureBuilder | None = None,
    ) -> OfflineRefresh:
        from offline_store.postgres_tables import append_postgres

        return append_postgres(
            self.address, bars, new_bars, macro, created=created, builder=builder
        )

    def read_raw(self, symbols: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        from offline_store.read import read_bars, read_macro

        with self.address.connect() as conn:
            return read_bars(conn, symbols), read_macro(conn)

    def read_feature_tables(
        self,
        symbols: Sequence[str],
        first_ns: int | None = None,
        last_ns: int | None = None,
    ) -> dict[str, pd.DataFrame]:
        import pandas as pd

        from offline_store.read import read_view_table

        tables: dict[str, pd.DataFrame] = {}
        with self.address.connect() as conn:
            for view in contract.VIEWS:
                since = None if first_ns is None else pd.Timestamp(first_ns, tz="UTC") - view.ttl
                until = None if last_ns is None else pd.Timestamp(last_ns, tz="UTC")
                tables[view.name] = read_view_table(conn, view, list(symbols), since, until)
        return tables

    def read_events(self) -> pd.DataFrame:
        from offline_store.read import read_events

        with self.address.connect() as conn:
            return read_events(conn)

    def record_events(self, events: pd.DataFrame, created: datetime) -> pd.DataFrame:
        from offline_store.postgres_tables import record_events

        return record_events(self.address, events, created)

    def rederive_state(self, since: datetime) -> datetime | None:
        from offline_store.postgres_tables import rederive_state

        return rederive_state(self.address, since)

    def raw_signature(self) -> tuple[object, ...] | None:
        """Row counts and latest keys of the L0 tables (raises when the database does not
        answer within 2 s)."""
        from offline_store.read import raw_signature

        with self.address.connect(connect_timeout=2) as conn:
            return raw_signature(conn)

    def read_raw_window(
        self, symbols: tuple[str, ...], last: int
    ) -> tuple[dict[str, Bars], MacroDaily]:
        # Each symbol's latest ``last`` bars, read through the primary key.
        from market_data import schema
        from offline_store.read import read_bars, read_macro

        with self.address.connect() as conn:
            bars_frame = read_bars(conn, symbols, last=last)
            macro_frame = read_macro(conn)
        bars: dict[str, Bars] = {}
        for symbol in symbols:
            try:
                bars[symbol] = schema.bars_from_frame(bars_frame, symbol)
            except KeyError:
                continue
        return bars, schema.macro_from_frame(macro_frame)

    def health(self) -> Health:
        """Answers (a pg_isready-equivalent connect + query), schema applied, every L0/L1 table
        holds rows."""
        import psycopg

        from offline_store.schema import applied_versions

        name = "offline store (postgres)"
        address = self.address
        started = time.perf_counter()
        try:
            with address.connect(connect_timeout=2) as conn:
                versions = applied_versions(conn)
                counts = {
                    table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                    for table in TABLES
                }
        except psycopg.Error as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
            return Health(
                name,
                False,
                f"{address}: {first_line}",
                f"check the server answers (`pg_isready -h {address.host} -p {address.port}`), "
                "the POSTGRES_* credentials, and that `python -m pipeline run` applied the schema",
            )
        connect_ms = (time.perf_counter() - started) * 1000
        empty = [table for table, row in counts.items() if row is None or row[0] == 0]
        if empty:
            return Health(
                name,
                False,
                f"{address}: schema v{max(versions, default=0)}, empty: {', '.join(empty)}",
                "run L0 and L1 (`python -m pipeline run`, or the `v3.l0_ingest` and "
                "`v3.l1_features` DAGs)",
            )
        rows = ", ".join(f"{t} {row[0]}" for t, row in counts.items() if row is not None)
        return Health(
            name, True, f"{address}: schema v{max(versions)}, {rows} rows ({connect_ms:.1f} ms)"
        )

    def feast_env(self) -> dict[str, str]:
        return {FEAST_KIND_VARIABLE: self.kind, **self.address.feast_env()}

    def feast_yaml(self, repo_dir: Path) -> Path:
        return Path(repo_dir).resolve() / FEAST_YAML
