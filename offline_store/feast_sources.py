"""Where Feast reads each view's offline rows: one batch source per store kind.

What enters: the store kind (``FEAST_OFFLINE_STORE_TYPE``: ``file`` or ``postgres``) and a
contract view. What leaves: the view's Feast batch source -- a ``FileSource`` over
``../data/offline/<view>.parquet`` (relative to the repository, as Feast resolves it;
``offline_store.file_tables`` writes it) or a ``PostgreSQLSource`` over the view's table
(``offline_store/sql``) -- for ``feature_repo/features.py``, which ``feast apply`` imports in
its own process. Imports Feast: only the repository's definitions import this module.
"""

from __future__ import annotations

from collections.abc import Callable

from feast import FileSource
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)

from canonical import contract
from canonical.offline_tables import OFFLINE_DIR


def _file_source(view: contract.FeatureView) -> FileSource:
    # Relative to the repository folder: Feast resolves file paths against the repo path.
    return FileSource(
        name=f"{view.name}_offline",
        path=f"../data/{OFFLINE_DIR}/{view.name}.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
        description=f"Offline table of {view.name} written by canonical.offline_tables.",
    )


def _postgres_source(view: contract.FeatureView) -> PostgreSQLSource:
    return PostgreSQLSource(
        name=f"{view.name}_offline",
        table=view.name,
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
        description=f"PostgreSQL table {view.name} (offline_store/sql/).",
    )


_SOURCES: dict[str, Callable[[contract.FeatureView], FileSource | PostgreSQLSource]] = {
    "file": _file_source,
    "postgres": _postgres_source,
}


def batch_source(kind: str, view: contract.FeatureView) -> FileSource | PostgreSQLSource:
    """The batch source of ``view`` in the store ``kind``."""
    return _SOURCES[kind](view)
