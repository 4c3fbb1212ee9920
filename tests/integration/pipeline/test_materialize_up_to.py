"""``python -m pipeline materialize --up-to T``: what a manual L1b run (``airflow dags trigger``
without a logical date) runs. Every view from where its last materialization ended (the first
time: one TTL back) up to ``T``, into a real Redis; the same ``T`` again writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from canonical import contract
from devstack.embedded_redis import EmbeddedRedis
from online_store import feast_layout
from tests.integration.feast._support import HISTORY_DAYS, copy_feature_repo, dump_redis

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

START, END = "2025-12-12T14:00:00+00:00", "2025-12-12T14:15:00+00:00"
UP_TO = "2025-12-12T14:12:00+00:00"
"""Inside the interval: the bar closing at 14:15 lies after it and must stay out of Redis."""


def test_up_to_materializes_every_view_to_that_time_once(
    tmp_path: Path, fresh_redis: EmbeddedRedis
) -> None:
    redis_server = fresh_redis
    repo = copy_feature_repo(tmp_path)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FEAST_REDIS_", "USDCOP_"))},
        "FEAST_REDIS_HOST": redis_server.host,
        "FEAST_REDIS_PORT": str(redis_server.port),
        "USDCOP_HISTORY_DAYS": str(HISTORY_DAYS),
        "USDCOP_METRICS_TEXTFILE_DIR": str(tmp_path / "textfiles"),
    }

    def pipeline(*step: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pipeline", *step, "--repo-dir", str(repo.repo_dir)],
            env=env, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip

    interval = ["--start", START, "--end", END]
    for step in (["l0", *interval], ["l1", *interval], ["apply"]):
        done = pipeline(*step)
        assert done.returncode == 0, (step, done.stderr[-2000:])

    first = pipeline("materialize", "--up-to", UP_TO)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.startswith(f"L1b up to {UP_TO}: materialized technical_features ["), (
        first.stdout
    )
    key = feast_layout.entity_key("USDCOP", contract.PROJECT)
    stored = dump_redis(redis_server)[key]
    up_to = pd.Timestamp(UP_TO)
    for view in contract.VIEWS:
        table = pd.read_parquet(repo.data_dir / "offline" / f"{view.name}.parquet")
        rows = table[(table["symbol"] == "USDCOP") & (table["event_timestamp"] <= up_to)]
        assert (table["event_timestamp"] > up_to).any() or view.name == "macro_features"
        latest = pd.Timestamp(rows["event_timestamp"].max())
        ts = feast_layout.decode_timestamp_ns(stored[feast_layout.ts_field(view.name)])
        assert ts == int(latest.value), view.name

    again = pipeline("materialize", "--up-to", UP_TO)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("(nothing after ") == len(contract.VIEWS), again.stdout
    assert dump_redis(redis_server)[key] == stored


@pytest.mark.parametrize(
    "args",
    [
        ["--up-to", UP_TO, "--start", START],
        ["--end", END],
        [],
    ],
)
def test_materialize_takes_an_interval_or_up_to(tmp_path: Path, args: list[str]) -> None:
    repo = copy_feature_repo(tmp_path)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FEAST_REDIS_", "USDCOP_"))},
        "FEAST_REDIS_HOST": "127.0.0.1",
        "FEAST_REDIS_PORT": "1",  # refused before Redis is reached
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "materialize", *args, "--repo-dir", str(repo.repo_dir)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--up-to" in done.stderr and "--start" in done.stderr
