"""Health transitions, reflection (grpcurl), graceful shutdown, and ``python -m server
--workers 2`` sharing one port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pandas as pd
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from core.clock import ManualClock
from devstack.embedded_redis import EmbeddedRedis, free_port
from server import fallback as fallback_module
from server.app import create_server
from tests.integration.server.conftest import (
    NOW_NS,
    STORE_VALUES,
    redis_client,
    running,
    server_config,
    write_observation,
    write_raw,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SERVICE = "usdcop.observation.v1.ObservationService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _health(channel: grpc.aio.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(response.status)


def test_health_serving_once_fallback_loads_and_not_serving_at_shutdown(
    closed_port: int, tmp_path: Path, raw_frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    data_dir = tmp_path / "data"

    async def scenario() -> None:
        async with running(server_config(closed_port, data_dir)) as app:
            # No Redis and no raw data yet.
            assert await _health(app.channel) == NOT_SERVING
            assert await _health(app.channel, SERVICE) == NOT_SERVING
            write_raw(data_dir, raw_frames)  # the background refresh picks it up
            for _ in range(200):
                if await _health(app.channel) == SERVING:
                    break
                await asyncio.sleep(0.05)
            assert await _health(app.channel) == SERVING
            assert await _health(app.channel, SERVICE) == SERVING
            obs = await app.get()
            assert {v.source for v in obs.views} == {pb.VALUE_SOURCE_COMPUTE_FALLBACK}
            await app.server.begin_shutdown()
            assert await _health(app.channel) == NOT_SERVING
            assert await _health(app.channel, SERVICE) == NOT_SERVING

    asyncio.run(scenario())


def test_health_serving_when_redis_answers(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(server_config(redis_server.port, tmp_path / "none")) as app:
            assert await _health(app.channel) == SERVING

    asyncio.run(scenario())


def _hold_first_refresh(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """The fallback's computation waits until the returned event is set."""
    gate = threading.Event()
    compute = fallback_module.compute_rows

    def held(*args: Any) -> Any:
        gate.wait(30)
        return compute(*args)

    monkeypatch.setattr(fallback_module, "compute_rows", held)
    return gate


async def _wait_health(channel: grpc.aio.Channel, status: int, seconds: float = 10.0) -> int:
    """Poll health until ``status`` (or ``seconds``); the last status seen (-1: no answer)."""
    seen = -1
    for _ in range(int(seconds / 0.025)):
        with contextlib.suppress(grpc.aio.AioRpcError):
            seen = await _health(channel)
            if seen == status:
                break
        await asyncio.sleep(0.025)
    return seen


def test_serving_before_the_fallback_loads_when_redis_holds_every_view(
    fresh_redis: EmbeddedRedis, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Redis holds fresh rows of every view: SERVING does not wait for the fallback's first
    # refresh (held here). A read that then needs the fallback is told it is still loading.
    client = redis_client(fresh_redis)
    write_observation(client)
    gate = _hold_first_refresh(monkeypatch)
    config = server_config(fresh_redis.port, data_dir, port=free_port(), cache_ttl_ms=0)

    async def scenario() -> None:
        starting = asyncio.create_task(create_server(config, clock=ManualClock(wall_ns=NOW_NS)))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{config.port}") as channel:
            stub = pb_grpc.ObservationServiceStub(channel)
            request = pb.GetObservationRequest(symbol="USDCOP")
            assert await _wait_health(channel, SERVING) == SERVING
            assert await _health(channel, SERVICE) == SERVING
            assert not starting.done()  # the fallback's first refresh is still held
            obs = await stub.GetObservation(request, timeout=5)
            assert {v.source for v in obs.views} == {pb.VALUE_SOURCE_ONLINE_STORE}
            client.flushall()  # now every view needs the fallback
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.GetObservation(request, timeout=5)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert raised.value.details() == (
                "no fresh data from the online store for USDCOP and the compute fallback is "
                "still loading (the server has just started): retry shortly"
            )
            gate.set()
            server, _ = await starting  # returns once the first refresh is done
            try:
                obs = await stub.GetObservation(request, timeout=5)
                assert {v.source for v in obs.views} == {pb.VALUE_SOURCE_COMPUTE_FALLBACK}
            finally:
                await server.stop(0)

    try:
        asyncio.run(scenario())
    finally:
        gate.set()


def test_not_serving_until_the_fallback_loads_when_redis_lacks_a_view(
    fresh_redis: EmbeddedRedis, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Redis answers but holds nothing for USDCOP: every answer needs the fallback, so health
    # waits for its first refresh (held here), and no longer.
    gate = _hold_first_refresh(monkeypatch)
    config = server_config(fresh_redis.port, data_dir, port=free_port())

    async def scenario() -> None:
        starting = asyncio.create_task(create_server(config, clock=ManualClock(wall_ns=NOW_NS)))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{config.port}") as channel:
            stub = pb_grpc.ObservationServiceStub(channel)
            assert await _wait_health(channel, NOT_SERVING) == NOT_SERVING
            await asyncio.sleep(0.3)
            assert await _health(channel) == NOT_SERVING  # still held
            assert not starting.done()
            gate.set()
            assert await _wait_health(channel, SERVING) == SERVING
            server, _ = await starting
            try:
                obs = await stub.GetObservation(
                    pb.GetObservationRequest(symbol="USDCOP"), timeout=5
                )
                assert {v.source for v in obs.views} == {pb.VALUE_SOURCE_COMPUTE_FALLBACK}
            finally:
                await server.stop(0)

    try:
        asyncio.run(scenario())
    finally:
        gate.set()


def test_graceful_shutdown_finishes_in_flight_calls(
    fresh_redis: EmbeddedRedis, data_dir: Path
) -> None:
    client = redis_client(fresh_redis)
    write_observation(client)
    config = server_config(fresh_redis.port, data_dir, cache_ttl_ms=0, redis_timeout_ms=5000.0)

    async def scenario() -> None:
        async with running(config) as app:
            assert len((await app.get()).values) == 15  # connection warm
            client.execute_command("CLIENT", "PAUSE", "700", "ALL")  # Redis stalls 0.7 s
            in_flight = asyncio.ensure_future(app.get(timeout=10))
            await asyncio.sleep(0.2)
            assert not in_flight.done()
            await app.server.stop(grace=5.0)
            obs = await in_flight  # finished during the grace period, from the store
            assert list(obs.values) == list(STORE_VALUES)
            assert {v.source for v in obs.views} == {pb.VALUE_SOURCE_ONLINE_STORE}
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await app.get(timeout=2)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE

    asyncio.run(scenario())


def test_reflection_lists_and_calls_through_grpcurl(
    redis_server: EmbeddedRedis, data_dir: Path
) -> None:
    grpcurl = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")

    async def run(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            grpcurl, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        assert proc.returncode == 0, err.decode()
        return out.decode()

    async def scenario() -> None:
        async with running(server_config(redis_server.port, data_dir)) as app:
            target = f"127.0.0.1:{app.port}"
            services = (await run("-plaintext", target, "list")).split()
            assert SERVICE in services
            assert "grpc.health.v1.Health" in services
            assert "grpc.reflection.v1alpha.ServerReflection" in services
            reply = json.loads(
                await run(
                    "-plaintext", "-d", '{"symbol":"USDCOP"}', target, f"{SERVICE}/GetObservation"
                )
            )
            assert reply["symbol"] == "USDCOP"
            assert len(reply["values"]) == 15

    asyncio.run(scenario())


def _listening_sockets(port: int) -> int:
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def _start_workers(
    port: int, redis_port: int, data_dir: Path
) -> tuple[subprocess.Popen[str], set[int]]:
    """``python -m server --workers 2`` and the pids of its two workers (from their log lines)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server",
            "--workers",
            "2",
            "--port",
            str(port),
            "--redis-port",
            str(redis_port),
            "--data-dir",
            str(data_dir),
            "--redis-timeout-ms",
            "1000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # its own process group, so cleanup reaches the workers too
    )
    assert proc.stderr is not None
    pids: set[int] = set()
    deadline = time.monotonic() + 60
    while len(pids) < 2 and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        match = re.search(r" (\d+) INFO .*listening on 127\.0\.0\.1:(\d+)", line)
        if match:
            assert int(match.group(2)) == port
            pids.add(int(match.group(1)))
    return proc, pids


def _cleanup(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


def _wait_gone(pids: set[int], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() for pid in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.timeout(90)
def test_two_workers_share_one_port(fresh_redis: EmbeddedRedis, data_dir: Path) -> None:
    port = free_port()
    now_ns = time.time_ns()  # the workers run on the real clock
    write_observation(
        redis_client(fresh_redis),
        event_ns={v: now_ns for v in ("technical_features", "macro_features", "state_features")},
    )
    proc, pids = _start_workers(port, fresh_redis.port, data_dir)
    try:
        assert len(pids) == 2, "two workers should each log their bound address"
        assert proc.pid not in pids
        assert _listening_sockets(port) == 2  # one SO_REUSEPORT socket per worker

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == SERVING
            get = channel.unary_unary(
                f"/{SERVICE}/GetObservation",
                request_serializer=pb.GetObservationRequest.SerializeToString,
                response_deserializer=pb.Observation.FromString,
            )
            observation = get(pb.GetObservationRequest(symbol="USDCOP"), timeout=10)
            assert list(observation.values) == list(STORE_VALUES)
        proc.send_signal(signal.SIGTERM)  # the parent forwards it; workers shut down cleanly
        assert proc.wait(timeout=30) == 0
        assert _wait_gone(pids)
    finally:
        _cleanup(proc)


@pytest.mark.timeout(90)
def test_workers_exit_when_the_parent_is_killed(
    redis_server: EmbeddedRedis, data_dir: Path
) -> None:
    proc, pids = _start_workers(free_port(), redis_server.port, data_dir)
    try:
        assert len(pids) == 2
        os.kill(proc.pid, signal.SIGKILL)  # no chance to forward anything
        proc.wait(timeout=10)
        assert _wait_gone(pids), "workers must not outlive their parent"
    finally:
        _cleanup(proc)


def test_port_in_use_is_a_clear_startup_error(redis_server: EmbeddedRedis, data_dir: Path) -> None:
    import socket

    from server.app import create_server
    from server.errors import StartupError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def scenario() -> None:
            with pytest.raises(StartupError) as raised:
                await create_server(
                    server_config(redis_server.port, data_dir).with_overrides(port=port)
                )
            assert raised.value.public_message == (
                f"cannot bind 127.0.0.1:{port}: is the port in use or the address wrong?"
            )

        asyncio.run(scenario())
