"""The Airflow tasks' commands (``python -m pipeline l0|l1|apply|materialize``) leave the
pipeline's metrics textfile behind: L1 rows, and per view the rows Feast wrote to a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from canonical import contract
from devstack.embedded_redis import EmbeddedRedis
from tests.integration.feast._support import HISTORY_DAYS, copy_feature_repo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

START, END = "2025-12-12T14:00:00+00:00", "2025-12-12T14:15:00+00:00"


def test_l1_and_materialize_write_the_textfile(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    repo = copy_feature_repo(tmp_path)
    folder = tmp_path / "textfiles"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FEAST_REDIS_", "USDCOP_"))},
        "FEAST_REDIS_HOST": redis_server.host,
        "FEAST_REDIS_PORT": str(redis_server.port),
        "USDCOP_HISTORY_DAYS": str(HISTORY_DAYS),
        "USDCOP_METRICS_TEXTFILE_DIR": str(folder),
    }
    interval = ["--start", START, "--end", END]
    for step in (["l0", *interval], ["l1", *interval], ["apply"], ["materialize", *interval]):
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", *step, "--repo-dir", str(repo.repo_dir)],
            env=env, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (step, done.stderr[-2000:])

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families((folder / "usdcop_pipeline.prom").read_text())
        for s in family.samples
    }
    assert samples[("usdcop_pipeline_l1_rows", ())] > 100
    assert samples[("usdcop_pipeline_last_run_success", ())] == 1
    for view in contract.VIEWS:
        labels = (("view", view.name),)
        # One symbol: Feast writes the entity's latest row of the interval.
        assert samples[("usdcop_materialization_rows_written", labels)] == 1
        assert samples[("usdcop_materialization_duration_seconds", labels)] > 0
        assert samples[("usdcop_materialization_window_end_timestamp_seconds", labels)] == (
            1765548900.0  # 2025-12-12 14:15 UTC
        )
