"""``--log-format json``: one JSON object per line for every event -- errors with the caller's
request id and peer, breaker transitions, fallback reasons -- and the Redis password in none."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import redis
from google.protobuf.timestamp_pb2 import Timestamp
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from canonical import contract
from devstack.embedded_redis import EmbeddedRedis, free_port
from tests.integration.server.conftest import write_observation

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SECRET = "pw-7c1e9f-never-logged"


def test_json_lines_carry_events_and_never_the_password(data_dir: Path) -> None:
    with EmbeddedRedis(password=SECRET) as store:
        now_ns = time.time_ns()
        write_observation(
            redis.Redis(host=store.host, port=store.port, password=SECRET),
            event_ns={view.name: now_ns for view in contract.VIEWS},
        )
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--log-format", "json", "--port", str(port)],
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "FEAST_REDIS_PORT": str(store.port),
                "FEAST_REDIS_PASSWORD": SECRET,
                "USDCOP_DATA_DIR": str(data_dir),
                "USDCOP_CACHE_TTL_MS": "0",
                "USDCOP_REDIS_TIMEOUT_MS": "1000",
                "USDCOP_BREAKER_OPEN_MS": "60000",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=60)
                stub = pb_grpc.ObservationServiceStub(channel)
                first = stub.GetObservation(pb.GetObservationRequest(symbol="USDCOP"), timeout=10)
                assert {v.source for v in first.views} == {pb.VALUE_SOURCE_ONLINE_STORE}

                store.stop()  # Redis goes away: the fallback answers, the breaker opens
                for _ in range(4):
                    answer = stub.GetObservation(
                        pb.GetObservationRequest(symbol="USDCOP"), timeout=10
                    )
                    assert {v.source for v in answer.views} == {pb.VALUE_SOURCE_COMPUTE_FALLBACK}
                with pytest.raises(grpc.RpcError) as failed:
                    stub.PushState(
                        pb.PushStateRequest(
                            symbol="USDCOP",
                            position=0.5,
                            event_time=Timestamp(seconds=now_ns // 10**9),
                        ),
                        timeout=10,
                        metadata=(("x-request-id", "req-42"),),
                    )
                assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=30)

    assert proc.returncode == 0, stderr[-3000:]
    lines = [line for line in (stdout + stderr).splitlines() if line.strip()]
    assert all(SECRET not in line for line in lines)
    # Every line is one JSON object, gRPC's C core's own lines included.
    assert all(line.startswith("{") for line in lines), lines
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert all({"ts", "level", "logger", "pid", "message"} <= set(e) for e in entries)
    by_event: dict[str, list[dict[str, object]]] = {}
    for entry in entries:
        by_event.setdefault(str(entry.get("event")), []).append(entry)

    (opened,) = by_event["breaker_transition"]
    assert (opened["from_state"], opened["to_state"], opened["level"]) == (
        "closed",
        "open",
        "WARNING",
    )
    fallbacks = {
        (e["view"], e["reason"]) for e in by_event["view_source"] if e["source"] == "fallback"
    }
    assert fallbacks == {(view.name, "store_unavailable") for view in contract.VIEWS}
    (error,) = by_event["rpc_error"]
    assert error["grpc_code"] == "UNAVAILABLE" and error["request_id"] == "req-42"
    assert str(error["peer"]).startswith("ipv4:127.0.0.1:")


def test_grpc_core_lines_are_json_too(data_dir: Path, tmp_path: Path) -> None:
    """A failed TLS handshake (any client can cause one) makes gRPC's C core write its own line
    to fd 2 (at INFO, gRPC's default); with --log-format json it arrives as a JSON record of
    the ``grpc`` logger; with GRPC_VERBOSITY=ERROR the core writes none."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))

    def run(verbosity: str | None) -> list[str]:
        with EmbeddedRedis() as store:
            port = free_port()
            env = {
                **os.environ,
                "FEAST_REDIS_PORT": str(store.port),
                "USDCOP_DATA_DIR": str(data_dir),
                "USDCOP_TLS_CERT_FILE": str(tmp_path / "cert.pem"),
                "USDCOP_TLS_KEY_FILE": str(tmp_path / "key.pem"),
            }
            env.pop("GRPC_VERBOSITY", None)
            if verbosity is not None:
                env["GRPC_VERBOSITY"] = verbosity
            proc = subprocess.Popen(
                [sys.executable, "-m", "server", "--log-format", "json", "--port", str(port)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            try:
                ca_pem = ca.cert_pem.bytes()
                with grpc.secure_channel(
                    f"127.0.0.1:{port}", grpc.ssl_channel_credentials(ca_pem)
                ) as tls:
                    grpc.channel_ready_future(tls).result(timeout=60)
                for _ in range(3):  # plaintext to a TLS port: a failed handshake each
                    with (
                        grpc.insecure_channel(f"127.0.0.1:{port}") as plain,
                        contextlib.suppress(grpc.FutureTimeoutError),
                    ):
                        grpc.channel_ready_future(plain).result(timeout=0.5)
                time.sleep(0.5)
            finally:
                proc.send_signal(signal.SIGTERM)
                stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr[-3000:]
        return [line for line in (stdout + stderr).splitlines() if line.strip()]

    verbose = run(None)
    assert all(line.startswith("{") for line in verbose), verbose
    entries = [json.loads(line) for line in verbose]
    handshakes = [
        e for e in entries if e["logger"] == "grpc" and "Handshake failed" in e["message"]
    ]
    assert handshakes, entries
    assert handshakes[0]["event"] == "grpc_core"
    assert handshakes[0]["source"].startswith("ssl_transport_security.cc:")
    assert handshakes[0]["level"] in {"INFO", "ERROR"}

    quiet = run("ERROR")
    assert all(line.startswith("{") for line in quiet), quiet
    assert not [line for line in quiet if "Handshake failed" in line], quiet
