"""Helpers for the process tests: another real gRPC server holding a port, and the process tree
of a child as the kernel shows it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.embedded_redis import free_port


@contextmanager
def another_server() -> Iterator[int]:
    """A real gRPC server of someone else (the benchmarks' echo server: SERVING health and a
    fixed GetObservation), on a port it holds; yields the port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks", "echo-server", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    break
                except grpc.RpcError:
                    assert proc.poll() is None, "the echo server exited"
                    assert time.monotonic() < deadline, "the echo server did not start"
                    time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def command_line(pid: int) -> list[str]:
    """The argv of a process (empty when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
