"""Shared fixtures. Integration tests get a real redis-server from the same mechanism the
quick start uses (devstack.embedded_redis)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.embedded_redis import EmbeddedRedis


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
