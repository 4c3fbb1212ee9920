"""The one place that chooses the offline store.

What enters: the data folder, the PostgreSQL address (or None) and, when given, the store type
(``FEAST_OFFLINE_STORE_TYPE``). What leaves: the :class:`~offline_store.store.OfflineStore` to
use: the files under the data folder, or the PostgreSQL database. The implementations are
imported only for the store chosen (neither pandas nor psycopg at import).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from offline_store.store import FEAST_KIND_VARIABLE, OfflineStore

if TYPE_CHECKING:
    from offline_store.connection import PostgresAddress


class MissingDatabaseError(ValueError):
    """The PostgreSQL store is asked for without an address."""


def open_store(
    data_dir: Path, postgres: PostgresAddress | None = None, kind: str | None = None
) -> OfflineStore:
    """The one place that chooses: the PostgreSQL store at ``postgres``; without one, the files
    under ``data_dir``. ``kind`` (``FEAST_OFFLINE_STORE_TYPE``), when given, decides instead:
    ``file`` leaves any address aside, ``postgres`` without one raises MissingDatabaseError."""
    if kind is not None and kind not in ("file", "postgres"):
        raise ValueError(f"{FEAST_KIND_VARIABLE}={kind!r} must be file or postgres")
    if kind == "file" or (kind is None and postgres is None):
        from offline_store.files import FileOfflineStore

        return FileOfflineStore(Path(data_dir))
    if postgres is None:
        raise MissingDatabaseError(f"{FEAST_KIND_VARIABLE}=postgres but POSTGRES_HOST is unset")
    from offline_store.postgres import PostgresOfflineStore

    return PostgresOfflineStore(Path(data_dir), postgres)
