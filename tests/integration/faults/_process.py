"""``python -m server`` as a child process for the fault tests: started with an environment,
waited on (health SERVING, or its exit), stopped by a real signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING


def start_server(env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "server"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        start_new_session=True,
    )


def health_status(target: str, timeout_s: float = 1.0) -> int | None:
    """The server's overall health, or None when it does not answer."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
        except grpc.RpcError:
            return None
    return int(reply.status)


def wait_serving(proc: subprocess.Popen[str], target: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited ({proc.returncode}): {stderr_of(proc)}")
        if health_status(target) == SERVING:
            return
        time.sleep(0.1)
    raise AssertionError(f"server not SERVING after {timeout_s} s")


def stderr_of(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        return ""
    return proc.stderr.read() if proc.stderr else ""


def kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()
