"""Children started with ``preexec_fn`` while a gRPC channel is busy in another thread start
(importing ``devstack`` first turns gRPC's fork handlers off): without it, about one child in ten
died before exec here (``epoll_wait error: Bad file descriptor``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

SCRIPT = r"""
import devstack  # first: before grpc is imported
import subprocess, threading
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from core.lifetime import preexec_die_with_parent

server = grpc.server(futures.ThreadPoolExecutor(4))
health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
done = threading.Event()

def busy():
    while not done.is_set():
        stub.Check(health_pb2.HealthCheckRequest())

threading.Thread(target=busy, daemon=True).start()
failed = 0
for _ in range(200):
    child = subprocess.run(
        ["/bin/true"], capture_output=True, preexec_fn=preexec_die_with_parent()
    )
    failed += child.returncode != 0 or bool(child.stderr)
done.set()
print(failed)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork semantics of Linux")
def test_children_start_while_a_channel_is_busy() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "0", done.stdout
