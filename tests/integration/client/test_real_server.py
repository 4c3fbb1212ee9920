"""The client against the real server (port 0), a real redis-server and real fallback data."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from canonical.contract import CONTRACT_HASH, CONTRACT_ID, FEATURE_NAMES, VIEWS
from client import (
    AsyncObservationClient,
    ContractMismatch,
    ObservationClient,
    ObservationRpcError,
)
from devstack.embedded_redis import EmbeddedRedis, free_port
from tests.integration.client.conftest import (
    NOW,
    STORE_EVENT_NS,
    STORE_VALUES,
    ServerThread,
    client_server_config,
)

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[3]


def test_get_returns_the_stored_values_and_their_provenance(real_server: ServerThread) -> None:
    with ObservationClient(real_server.target) as obs:
        first = obs.get("USDCOP")
        second = obs.get("USDCOP")
    assert first.values.dtype == np.float32 and first.values.shape == (15,)
    assert first.values.tolist() == np.asarray(STORE_VALUES, dtype=np.float32).tolist()
    assert [v.view for v in first.views] == [v.name for v in VIEWS]
    assert {v.source for v in first.views} == {"online_store"}
    assert {v.freshness for v in first.views} == {"fresh"}
    assert {v.fallback_reason for v in first.views} == {"none"}
    assert first.views[0].event_time == NOW.fromtimestamp(STORE_EVENT_NS / 1e9, NOW.tzinfo)
    assert first.from_cache is False and second.from_cache is True
    assert first.proto.contract_hash == CONTRACT_HASH


def test_describe_returns_the_contract(real_server: ServerThread) -> None:
    with ObservationClient(real_server.target) as obs:
        contract = obs.describe()
    assert contract.contract_id == CONTRACT_ID
    assert contract.contract_hash == CONTRACT_HASH
    assert [f.name for f in contract.features] == list(FEATURE_NAMES)


def test_push_state_round_trip(real_server: ServerThread) -> None:
    with ObservationClient(real_server.target) as obs:
        assert obs.push_state("USDCOP", -0.5, NOW) is True
        assert obs.push_state("USDCOP", 1.0, NOW) is False  # not newer: ignored, as in Feast
        result = obs.get("USDCOP")
    assert result.by_name()["position"] == -0.5
    assert result.views[2].source == "online_store"
    assert result.views[2].event_time == NOW


def test_invalid_position_is_invalid_argument(real_server: ServerThread) -> None:
    with ObservationClient(real_server.target) as obs, pytest.raises(ObservationRpcError) as info:
        obs.push_state("USDCOP", 2.0, NOW)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_and_malformed_symbols_map_to_their_status(real_server: ServerThread) -> None:
    with ObservationClient(real_server.target) as obs:
        with pytest.raises(ObservationRpcError) as unknown:
            obs.get("EURUSD")
        with pytest.raises(ObservationRpcError) as malformed:
            obs.get("bad symbol!")
    assert unknown.value.code == grpc.StatusCode.NOT_FOUND
    assert malformed.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_contract_mismatch_is_a_clear_error(real_server: ServerThread) -> None:
    other = "ab" * 32
    obs = ObservationClient(real_server.target, expected_hash=other)
    with obs, pytest.raises(ContractMismatch) as info:
        obs.get("USDCOP")
    message = str(info.value)
    assert other in message and CONTRACT_HASH in message and CONTRACT_ID in message
    assert info.value.expected == other and info.value.served == CONTRACT_HASH


def test_the_deadline_is_applied_to_every_call(real_server: ServerThread) -> None:
    calls = {
        "get": lambda obs: obs.get("USDCOP"),
        "describe": lambda obs: obs.describe(),
        "push_state": lambda obs: obs.push_state("USDCOP", 0.0, NOW),
    }
    with ObservationClient(real_server.target, timeout_s=0.2) as obs:
        obs.check_contract()  # connected and checked: only the stalled call is timed below
        for name, call in calls.items():
            real_server.stall(0.6)
            began = time.monotonic()
            with pytest.raises(ObservationRpcError) as info:
                call(obs)
            elapsed = time.monotonic() - began
            assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED, name
            assert elapsed < 0.5, (name, elapsed)
            time.sleep(0.5)  # let the stall end before the next call


def test_retries_reach_a_server_that_starts_a_moment_later(
    redis_server: EmbeddedRedis, raw_data_dir: Path
) -> None:
    port = free_port()
    thread = ServerThread(client_server_config(redis_server, raw_data_dir, port=port))
    starter = threading.Timer(0.05, thread.start)
    began = time.monotonic()
    starter.start()
    try:
        with ObservationClient(f"127.0.0.1:{port}", timeout_s=5.0) as obs:
            result = obs.get("USDCOP")
    finally:
        starter.join()
        thread.stop()
    assert result.values.shape == (15,)
    assert time.monotonic() - began < 5.0


def test_async_client_round_trip(real_server: ServerThread) -> None:
    async def run() -> tuple[list[float], bool, int]:
        async with AsyncObservationClient(real_server.target) as obs:
            results = await asyncio.gather(*(obs.get("USDCOP") for _ in range(5)))
            contract = await obs.describe()
            return results[0].values.tolist(), results[-1].from_cache, len(contract.features)

    values, _, n_features = asyncio.run(run())
    assert values == np.asarray(STORE_VALUES, dtype=np.float32).tolist()
    assert n_features == 15


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_prints_a_named_table(real_server: ServerThread) -> None:
    out = _cli("USDCOP", "--target", real_server.target)
    assert out.returncode == 0, out.stderr
    for name in FEATURE_NAMES:
        assert name in out.stdout
    for column in ("idx", "feature", "value", "view", "source", "freshness", "event time"):
        assert column in out.stdout
    assert "online_store" in out.stdout and "from_cache=" in out.stdout
    as_json = _cli("USDCOP", "--target", real_server.target, "--json")
    payload = json.loads(as_json.stdout)
    assert list(payload["values"]) == list(FEATURE_NAMES)
    assert payload["values"]["rsi_9"] == pytest.approx(STORE_VALUES[3])


def test_cli_errors_are_one_line_with_the_status(real_server: ServerThread) -> None:
    unknown = _cli("EURUSD", "--target", real_server.target)
    assert unknown.returncode == 1
    assert "NOT_FOUND" in unknown.stderr and "Traceback" not in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    down = _cli("USDCOP", "--target", f"127.0.0.1:{free_port()}", "--timeout-s", "3")
    assert down.returncode == 1
    assert "UNAVAILABLE" in down.stderr and "Traceback" not in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1
