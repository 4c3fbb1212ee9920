"""Plain ``feast`` in feature_repo/, as feature_repo/README.md tells a user: its "Redis connection"
block (export the variables, ``cd feature_repo``, ``feast feature-views list``, ``feast
materialize-incremental $(date ...)``) run as written by bash, with the real feast CLI, against a
real redis-server. Only the port differs (the README says 6379; the test's server has its own).

``feast materialize-incremental`` starts each view's first window one TTL before the wall clock,
so the offline tables must hold rows of the last hour: the history is generated up to now and the
live feed's catch-up appends the bars of the last hour; then Redis is emptied and the registry is
applied afresh (no materialization recorded), so what Redis holds afterwards is the CLI's work.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import redis

from canonical import contract
from devstack.embedded_redis import EmbeddedRedis
from online_store import feast_layout
from pipeline.feast_repo import apply_definitions, open_feature_store
from pipeline.live import LiveFeed
from pipeline.run import run_pipeline
from pipeline.settings import REPO_ROOT
from tests.integration.feast._support import address_of, copy_feature_repo, dump_redis

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

README = REPO_ROOT / "feature_repo" / "README.md"
README_PORT = "FEAST_REDIS_PORT=6379"


def _connection_block() -> str:
    """The first ```bash block of the README's "Redis connection" section."""
    section = README.read_text().split("## Redis connection", 1)[1]
    found = re.search(r"^```bash\n(.*?)^```", section, re.S | re.M)
    assert found, "no ```bash block in the Redis connection section"
    return found[1]


def test_the_readme_exports_every_variable_the_yaml_reads() -> None:
    # Feast runs os.path.expandvars over the yaml: an unset variable stays "${...}" and Feast
    # fails to parse the file (the pydantic error on redis_type).
    block = _connection_block()
    exported = set(re.findall(r"\b(FEAST_[A-Z_]+)=", block))
    yaml_text = (REPO_ROOT / "feature_repo" / "feature_store.yaml").read_text()
    used = set(re.findall(r"\$\{(\w+)\}", yaml_text))
    assert used and used <= exported, sorted(used - exported)


def test_readme_block_lists_views_and_materializes_into_redis(
    tmp_path: Path, fresh_redis: EmbeddedRedis
) -> None:
    repo = copy_feature_repo(tmp_path)
    address = address_of(fresh_redis)
    now = datetime.now(UTC)
    result = run_pipeline(repo.repo_dir, repo.data_dir, now, address, days=10)
    assert result.store is not None
    LiveFeed(repo.data_dir, result.store).step(now)  # the bars of the last hour, every view
    client = redis.Redis(host=fresh_redis.host, port=fresh_redis.port)
    client.flushall()
    client.close()
    (repo.data_dir / "registry.db").unlink()
    apply_definitions(open_feature_store(repo.repo_dir, address), repo.repo_dir)
    assert dump_redis(fresh_redis) == {}

    block = _connection_block()
    assert README_PORT in block and "FEAST_REDIS_HOST=127.0.0.1" in block
    script = block.replace(README_PORT, f"FEAST_REDIS_PORT={fresh_redis.port}")
    # A user's shell: the project's virtualenv on PATH, no FEAST_* or USDCOP_* variables set.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FEAST_", "USDCOP_")) and k != "PYTHONPATH"
    }
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=repo.root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "${" not in output and "validation error" not in output, output[-4000:]

    listed = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    for view in contract.VIEWS:
        assert view.name in listed, done.stdout
    assert re.search(r"Materializing .*3.* feature views to", done.stdout), done.stdout

    # Every view's latest offline row is now in Redis, in Feast's layout.
    key = feast_layout.entity_key("USDCOP", contract.PROJECT)
    stored = dump_redis(fresh_redis)
    assert list(stored) == [key]
    for view in contract.VIEWS:
        table = pd.read_parquet(repo.data_dir / "offline" / f"{view.name}.parquet")
        latest = pd.Timestamp(table.loc[table["symbol"] == "USDCOP", "event_timestamp"].max())
        assert latest > pd.Timestamp(now) - view.ttl  # inside the window the CLI starts from
        ts = feast_layout.decode_timestamp_ns(stored[key][feast_layout.ts_field(view.name)])
        assert ts == int(latest.value), view.name
