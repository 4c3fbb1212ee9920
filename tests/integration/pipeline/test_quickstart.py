"""`python -m pipeline up` end to end: embedded Redis, pipeline, live catch-up, the gRPC server
serving every symbol built, an observation through the client, then a clean stop; and a server
that fails to start (port taken, even by another server) or dies later ends `up` non-zero.

The catch-up makes the data fresh whatever the hour or weekday the test runs at -- that is the
claim under test; every value is asserted to come fresh from the online store."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from canonical import contract
from devstack import processes
from pipeline.state_file import state_file_path
from tests.integration.devstack._support import another_server, command_line
from tests.integration.feast._support import HISTORY_DAYS, copy_feature_repo

pytestmark = pytest.mark.integration


def test_up_serves_a_fresh_observation_and_stops_cleanly(tmp_path) -> None:
    repo = copy_feature_repo(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEAST_REDIS_", "USDCOP_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "up", "--repo-dir", str(repo.repo_dir),
         "--days", str(HISTORY_DAYS), "--port", "0", "--metrics-port", "0",
         "--tick-s", "1", "--exit-after-s", "2", "--symbols", "USDCOP,USDMXN"],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    # The server serves every symbol the pipeline built (its start-up probe passed), and the
    # client printed one table per symbol: 2 x 15 values, all fresh from the online store.
    served = [
        line
        for line in out.splitlines()
        if len(line.split()) >= 6
        and line.split()[1] in contract.FEATURE_NAMES
        and {"online_store", "fresh"} <= set(line.split())
    ]
    assert len(served) == 2 * contract.N_FEATURES, out[-3000:]

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
    assert re.search(r"Prometheus metrics of the server: http://127\.0\.0\.1:\d+/metrics", out)

    # The pipeline's metrics textfile: every view materialized, with rows and a success time.
    textfile = repo.data_dir / "metrics" / "usdcop_pipeline.prom"
    assert f"pipeline metrics (node-exporter textfile): {textfile}" in out
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(textfile.read_text())
        for s in family.samples
    }
    for view in contract.VIEWS:
        labels = (("view", view.name),)
        assert samples[("usdcop_materialization_rows_written", labels)] >= 0
        assert samples[("usdcop_materialization_last_success_timestamp_seconds", labels)] > 1.7e9
    assert samples[("usdcop_pipeline_last_run_success", ())] == 1
    assert samples[("usdcop_pipeline_l1_rows", ())] > 1000

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
             "--days", str(HISTORY_DAYS), "--port", str(port), "--metrics-port", "0",
             "--exit-after-s", "1"],
            capture_output=True, text=True, env=env, timeout=240, check=False,
        )  # fmt: skip
    assert done.returncode == 1, done.stdout[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"port {port} is already served by another process" in done.stderr
    assert "error: the observation server did not start" in done.stderr
    assert not state_file_path(repo.data_dir).exists()
    started = re.search(r"embedded redis-server on 127\.0\.0\.1:(\d+)", done.stdout)
    assert started is not None, done.stdout[-2000:]
    redis_port = int(started.group(1))
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", redis_port), timeout=1):
        pass


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("FEAST_REDIS_", "USDCOP_"))}


def test_up_exits_when_another_server_holds_its_port(tmp_path) -> None:
    repo = copy_feature_repo(tmp_path)
    with another_server() as port:
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", "up", "--repo-dir", str(repo.repo_dir),
             "--days", str(HISTORY_DAYS), "--port", str(port), "--metrics-port", "0",
             "--exit-after-s", "30"],
            capture_output=True, text=True, env=_clean_env(), timeout=300, check=False,
        )  # fmt: skip
    assert done.returncode == 1, done.stdout[-2000:]
    assert "ObservationService is serving" not in done.stdout  # it never talked to the other
    assert "error: the observation server did not start: server exited with code 1" in (done.stderr)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


def test_up_exits_when_its_server_dies_during_the_live_feed(tmp_path) -> None:
    repo = copy_feature_repo(tmp_path)
    up = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "up", "--repo-dir", str(repo.repo_dir),
         "--days", str(HISTORY_DAYS), "--port", "0", "--metrics-port", "0", "--tick-s", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_clean_env(),
    )  # fmt: skip
    try:
        assert up.stdout is not None
        seen = []
        for line in up.stdout:
            seen.append(line)
            if "ObservationService is serving" in line:
                break
        else:
            raise AssertionError("".join(seen)[-3000:])
        servers = [
            pid
            for pid in processes.descendants(up.pid)
            if command_line(pid)[1:3] == ["-m", "server"]
        ]
        assert len(servers) == 1, servers
        tree = processes.descendants(up.pid)
        os.kill(servers[0], signal.SIGKILL)
        _, err = up.communicate(timeout=60)
        assert up.returncode == 1
        assert f"error: the observation server (pid {servers[0]}) exited with code -9" in err
        assert processes.wait_gone(tree, timeout_s=10) == set()  # redis-server too
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate()


def test_up_with_the_agent_closes_the_loop(tmp_path) -> None:
    """`make run`'s `--agent-policy`: the agent decides on the served observation and pushes,
    and the next live tick records its position in the offline store."""
    from offline_store.factory import open_store

    repo = copy_feature_repo(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEAST_REDIS_", "USDCOP_"))}
    policy = os.path.join(
        os.path.dirname(contract.__file__), "..", "agent", "policies", "example.npz"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "up", "--repo-dir", str(repo.repo_dir),
         "--days", str(HISTORY_DAYS), "--port", "0", "--metrics-port", "0",
         "--tick-s", "1", "--exit-after-s", "4", "--agent-policy", policy],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    pushed = [line for line in out.splitlines() if line.startswith("agent: push ")]
    assert pushed, out[-3000:]
    assert "(applied)" in pushed[0] and " push " in pushed[0]
    assert "bar close -> applied " in pushed[0]
    position = float(pushed[0].split()[2])
    events = open_store(repo.data_dir).read_events()  # recorded offline by a tick after the push
    assert events["position"].tolist()[:1] == [pytest.approx(position, abs=5e-4)]
    decisions = list((repo.data_dir / "offline" / "agent_decisions").glob("decisions-*.jsonl"))
    assert len(decisions) == 1 and decisions[0].read_text().count('"action": "push"') >= 1
    assert (repo.data_dir / "metrics" / "usdcop_agent.prom").exists()
