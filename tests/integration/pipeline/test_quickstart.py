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
