"""``--log-format json``: one JSON object per line for every event -- errors with the caller's
request id and peer, breaker transitions, fallback reasons -- and the Redis password in none."""

from __future__ import annotations

import json
import os
import re
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
GRPC_CORE_LINE = re.compile(r"^[DIWEF]\d{4} ")


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
    # Every line of ours is one JSON object; gRPC's C core may add its own ("I1126 ...").
    assert all(line.startswith("{") or GRPC_CORE_LINE.match(line) for line in lines), lines
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
