"""Shared fixtures. Integration tests get a real redis-server and a real PostgreSQL from the same
mechanisms the quick start uses (devstack.embedded_redis, devstack.embedded_postgres)."""

from __future__ import annotations

import os

# Before anything imports grpc (see core/lifetime.py: forked children and busy channels).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import dataclasses
import itertools
import re
from collections.abc import Iterator

import pytest

from devstack.embedded_postgres import EmbeddedPostgres
from devstack.embedded_redis import EmbeddedRedis
from offline_store.connection import PostgresAddress


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """One real redis-server for the whole session (tests must use distinct keys or flush)."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def fresh_redis() -> Iterator[EmbeddedRedis]:
    """A real redis-server of the test's own, for tests that stop or corrupt it."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[EmbeddedPostgres]:
    """One real PostgreSQL for the whole session (started on first use, ~2-3 s)."""
    with EmbeddedPostgres() as server:
        yield server


@pytest.fixture
def postgres_db(
    postgres_server: EmbeddedPostgres, request: pytest.FixtureRequest
) -> PostgresAddress:
    """A fresh, empty database of the test's own on the session's PostgreSQL."""
    return new_database(postgres_server, request.node.name)


def new_database(server: EmbeddedPostgres, hint: str) -> PostgresAddress:
    """Create an empty database named after ``hint`` (made unique) and return its address."""
    name = "t_" + re.sub(r"[^a-z0-9_]", "_", hint.lower())[:40] + f"_{next(_DATABASE_IDS)}"
    admin = dataclasses.replace(server.address, database="postgres")
    with admin.connect(autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return dataclasses.replace(server.address, database=name)


_DATABASE_IDS = itertools.count()
