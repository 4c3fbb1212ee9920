"""The quick start's state file: how to reach the Redis that ``python -m pipeline up`` started.

What enters: the Redis address ``up`` uses. What leaves: ``data_dir/redis.env`` (mode 0600, it
may hold a password) with the four ``FEAST_REDIS_*`` lines, read back by
``python -m pipeline feast ...`` so the seed's Feast diagnostics reach the same Redis while
``up`` runs. ``up`` removes the file when it stops.
"""

from __future__ import annotations

import os
from pathlib import Path

from online_store.address import RedisAddress

STATE_FILE = "redis.env"


def state_file_path(data_dir: Path) -> Path:
    """``data_dir/redis.env``."""
    return Path(data_dir) / STATE_FILE


def write_redis_state(data_dir: Path, redis: RedisAddress) -> Path:
    """Write the address as ``KEY=value`` lines (shell-sourceable); returns the path."""
    path = state_file_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{key}={value}\n" for key, value in redis.feast_env().items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


def read_redis_state(data_dir: Path) -> RedisAddress | None:
    """The address ``up`` wrote, or None when no state file exists."""
    path = state_file_path(data_dir)
    if not path.is_file():
        return None
    pairs = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return RedisAddress.from_env(pairs)


def remove_redis_state(data_dir: Path) -> None:
    """Delete the state file if present."""
    state_file_path(data_dir).unlink(missing_ok=True)
