"""A benchmark run that is SIGKILLed leaves none of its processes behind: the servers it started
(benchmarks.servers) and its load generators (benchmarks.workers) die with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from devstack import processes
from tests.integration.devstack._support import command_line

pytestmark = pytest.mark.integration

_RUN = """
import sys, tempfile, time
from pathlib import Path
from benchmarks import servers
from benchmarks.workers import WorkerPool
from devstack.embedded_redis import free_port

pool = WorkerPool(2, warm_imports=False)
echo = servers.echo_server(free_port(), Path(tempfile.mkdtemp()))
echo.wait_serving()
print("READY", flush=True)
time.sleep(600)
"""


@pytest.mark.timeout(120)
def test_a_killed_run_leaves_no_server_and_no_load_generator() -> None:
    run = subprocess.Popen(
        [sys.executable, "-c", _RUN], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert run.stdout is not None
        assert run.stdout.readline().strip() == "READY"
        tree = processes.descendants(run.pid)
        names = [" ".join(command_line(pid)) for pid in tree]
        assert sum("multiprocessing.spawn" in name for name in names) == 2, names
        assert sum("echo-server" in name for name in names) == 1, names
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
        killed = time.monotonic()
        left = processes.wait_gone(tree, timeout_s=5.0)
        print(
            f"SIGKILL of a run: {len(tree)} descendants gone in {time.monotonic() - killed:.2f} s"
        )
        assert left == set(), {pid: command_line(pid) for pid in left}
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if run.stdout is not None:
            run.stdout.close()
