"""`python -m pipeline live` (the pipeline's container in deploy/): against a configured Redis it
runs the pipeline, catches up, leaves every view of every symbol fresh in Redis, writes the
metrics textfile, starts no server and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from canonical import contract
from devstack.embedded_redis import EmbeddedRedis
from pipeline.online_watch import OnlineStoreWatch
from tests.integration.feast._support import HISTORY_DAYS, address_of, copy_feature_repo

pytestmark = pytest.mark.integration


def test_live_fills_the_configured_redis_and_stops_on_sigterm(
    tmp_path, fresh_redis: EmbeddedRedis
) -> None:
    repo = copy_feature_repo(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEAST_REDIS_", "USDCOP_"))}
    env.update(address_of(fresh_redis).feast_env())
    live = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "live", "--repo-dir", str(repo.repo_dir),
         "--days", str(HISTORY_DAYS), "--tick-s", "1", "--symbols", "USDCOP,USDMXN"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert live.stdout is not None
        seen: list[str] = []
        for line in live.stdout:
            seen.append(line)
            if line.startswith("live feed: a tick every 1 s"):
                break
        assert seen and seen[-1].startswith("live feed:"), "".join(seen)[-3000:]
        assert "ObservationService is serving" not in "".join(seen)
        watch = OnlineStoreWatch(address_of(fresh_redis), contract.PROJECT, ["USDCOP", "USDMXN"])
        try:
            assert watch.gaps(datetime.now(UTC)) == []
        finally:
            watch.close()
        textfile = repo.data_dir / "metrics" / "usdcop_pipeline.prom"
        assert "usdcop_materialization_last_success_timestamp_seconds" in textfile.read_text()
        live.send_signal(signal.SIGTERM)
        out, err = live.communicate(timeout=60)
    finally:
        if live.poll() is None:
            live.kill()
            live.wait()
    assert live.returncode == 0, err[-3000:]
    assert "stopping the live feed" in out
    assert "Traceback" not in err, err[-3000:]
