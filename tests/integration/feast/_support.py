"""Helpers for the Feast and pipeline integration tests: a private copy of feature_repo/ with
its data folder, the Redis address of an EmbeddedRedis, and a dump of Redis contents."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis

from devstack.embedded_redis import EmbeddedRedis
from online_store.address import RedisAddress
from pipeline.settings import REPO_ROOT

FRIDAY_CLOSE = datetime(2026, 1, 9, 18, 0, tzinfo=UTC)
"""A Friday at 18:00 UTC: the week's last session has just closed."""
SUNDAY_NOON = datetime(2026, 1, 11, 12, 0, tzinfo=UTC)
"""The Sunday after: 42 h later, past every view's TTL."""
HISTORY_DAYS = 30
"""Short history: enough for the builder's 300-bar window and keeps the tests fast."""


@dataclass(frozen=True)
class RepoCopy:
    root: Path
    repo_dir: Path
    data_dir: Path


def copy_feature_repo(root: Path) -> RepoCopy:
    """``root/feature_repo`` (a copy of the checkout's) and ``root/data`` (empty)."""
    repo_dir = root / "feature_repo"
    shutil.copytree(
        REPO_ROOT / "feature_repo", repo_dir, ignore=shutil.ignore_patterns("__pycache__", "data")
    )
    return RepoCopy(root=root, repo_dir=repo_dir, data_dir=root / "data")


def address_of(server: EmbeddedRedis) -> RedisAddress:
    return RedisAddress(host=server.host, port=server.port, password=server.password)


def dump_redis(server: EmbeddedRedis) -> dict[bytes, dict[bytes, bytes]]:
    """Every hash in the server, key -> field -> value (Feast stores one hash per entity)."""
    client = redis.Redis(host=server.host, port=server.port, password=server.password or None)
    try:
        # Feast's hashes only (the servers' push and served-log streams live beside them).
        keys = [key for key in client.keys("*") if client.type(key) == b"hash"]
        return {key: client.hgetall(key) for key in keys}
    finally:
        client.close()
