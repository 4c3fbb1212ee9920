"""`python -m pipeline up` end to end: embedded Redis, pipeline, live catch-up, the gRPC server,
an observation through the client, then a clean stop.

The catch-up makes the data fresh whatever the hour or weekday the test runs at -- that is the
claim under test; every value is asserted to come fresh from the online store."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

from canonical import contract
from pipeline.state_file import state_file_path
from tests.integration.feast._support import HISTORY_DAYS, copy_feature_repo

pytestmark = pytest.mark.integration


def test_up_serves_a_fresh_observation_and_stops_cleanly(tmp_path) -> None:
    repo = copy_feature_repo(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEAST_REDIS_", "USDCOP_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "up", "--repo-dir", str(repo.repo_dir),
         "--days", str(HISTORY_DAYS), "--port", "0", "--tick-s", "1", "--exit-after-s", "2"],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]

    rows = {
        line.split()[1]: line.split()
        for line in out.splitlines()
        if len(line.split()) >= 6 and line.split()[1] in contract.FEATURE_NAMES
    }
    client_rows = {name: cells for name, cells in rows.items() if "online_store" in cells}
    assert set(client_rows) == set(contract.FEATURE_NAMES), out
    assert all("fresh" in cells for cells in client_rows.values()), out
    assert "ObservationService is serving on 127.0.0.1:" in out
    assert "grpcurl -plaintext" in out

    # Stopped cleanly: state file removed, the embedded Redis no longer listens.
    assert not state_file_path(repo.data_dir).exists()
    port = int(re.search(r"embedded redis-server on 127\.0\.0\.1:(\d+)", out).group(1))
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_up_with_its_port_taken_says_so_and_leaves_nothing_running(tmp_path) -> None:
    repo = copy_feature_repo(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEAST_REDIS_", "USDCOP_"))}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", "up", "--repo-dir", str(repo.repo_dir),
             "--days", str(HISTORY_DAYS), "--port", str(port), "--exit-after-s", "1"],
            capture_output=True, text=True, env=env, timeout=240, check=False,
        )  # fmt: skip
    assert done.returncode == 1, done.stdout[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"cannot bind 127.0.0.1:{port}" in done.stderr
    assert "error: the observation server did not start" in done.stderr
    assert not state_file_path(repo.data_dir).exists()
    started = re.search(r"embedded redis-server on 127\.0\.0\.1:(\d+)", done.stdout)
    assert started is not None, done.stdout[-2000:]
    redis_port = int(started.group(1))
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", redis_port), timeout=1):
        pass
