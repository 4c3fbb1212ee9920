"""The offline store's schema: versioned SQL files applied in order, each exactly once.

What enters: a psycopg connection. What leaves: every ``offline_store/sql/NNN_name.sql`` not yet
recorded in ``schema_version`` applied (each in the same transaction as its record, under an
advisory lock so two pipelines starting together do not both apply it), and the list of the
versions applied by this call (empty when the database was current).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

SQL_DIR = Path(__file__).resolve().parent / "sql"
_FILE_NAME = re.compile(r"(\d{3})_([a-z0-9_]+)\.sql")
_LOCK_KEY = 7_161_950  # any constant: serializes schema changes of this project


@dataclass(frozen=True)
class Migration:
    """One versioned SQL file."""

    version: int
    name: str
    sql: str


def migrations(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The SQL files in version order; a misnamed file or a repeated version is an error."""
    found: list[Migration] = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise ValueError(f"{path.name}: schema files are named NNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"repeated schema version in {sql_dir}: {versions}")
    return found


def applied_versions(conn: psycopg.Connection[Any]) -> list[int]:
    """Versions recorded in ``schema_version`` (empty when the table does not exist yet)."""
    exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    return [int(row[0]) for row in conn.execute("SELECT version FROM schema_version ORDER BY 1")]


def apply_schema(conn: psycopg.Connection[Any], sql_dir: Path = SQL_DIR) -> list[int]:
    """Apply the missing migrations; returns the versions applied now."""
    done: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY,"
            " name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        present = set(applied_versions(conn))
        for migration in migrations(sql_dir):
            if migration.version in present:
                continue
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_version (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            done.append(migration.version)
    return done
