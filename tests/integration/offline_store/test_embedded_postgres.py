"""The embedded PostgreSQL: a real server on 127.0.0.1, its password kept out of repr, and no
server left behind when its parent is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from devstack.embedded_postgres import EmbeddedPostgres

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

_PARENT = """
import sys, time
from devstack.embedded_postgres import EmbeddedPostgres
pg = EmbeddedPostgres().start()
print(pg.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead for our purpose
        return stat.read().split(") ", 1)[1][0] != "Z"


def test_serves_sql_and_hides_its_password(postgres_server: EmbeddedPostgres) -> None:
    address = postgres_server.address
    assert address.host == "127.0.0.1"
    assert address.password and address.password not in repr(address)
    assert address.password not in str(address)
    with address.connect() as conn:
        row = conn.execute("SELECT current_database(), current_setting('fsync')").fetchone()
    assert row == ("usdcop", "off")


def test_a_sigkilled_parent_leaves_no_postgres_running() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        postmaster = int(parent.stdout.readline())
        assert _alive(postmaster)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _alive(postmaster) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(postmaster), "postgres outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_stop_ends_the_server_and_removes_its_folder() -> None:
    server = EmbeddedPostgres().start()
    pid = server.pid
    assert pid is not None and _alive(pid)
    assert server.start_seconds > 0
    server.stop()
    assert not _alive(pid)
    assert not server.running
