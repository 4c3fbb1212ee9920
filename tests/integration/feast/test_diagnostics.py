"""The seed's diagnostics: `python -m pipeline feast ...` runs the feast CLI in the repository
with FEAST_REDIS_* taken from data/redis.env (what `up` writes while it runs)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from canonical import contract
from pipeline.state_file import remove_redis_state, write_redis_state
from tests.integration.feast._support import address_of

pytestmark = pytest.mark.integration


def test_feature_services_list_through_the_state_file(materialized) -> None:
    repo = materialized.repo
    write_redis_state(repo.data_dir, address_of(materialized.redis))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEAST_REDIS_")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", "feast", "--repo-dir", str(repo.repo_dir),
             "feature-services", "list"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
    finally:
        remove_redis_state(repo.data_dir)
    assert done.returncode == 0, done.stderr
    line = next(row for row in done.stdout.splitlines() if contract.FEATURE_SERVICE in row)
    listed = [ref.strip().split(":")[1] for ref in line.split(None, 1)[1].split(",")]
    assert listed == list(contract.FEATURE_NAMES)
