"""The client's channel behaviour against a real gRPC server on port 0 that is scripted to
fail, stall or announce another contract: retries, deadlines, the first-use contract check."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from client import (
    AsyncObservationClient,
    ContractMismatch,
    MalformedObservation,
    ObservationClient,
    ObservationRpcError,
)
from client._base import RETRY_MAX_ATTEMPTS
from devstack.embedded_redis import free_port
from tests.integration.client._stub_server import ScriptedService, start

pytestmark = pytest.mark.integration


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedService, int]]:
    service = ScriptedService()
    server, port = start(service)
    yield service, port
    server.stop(grace=None)


def test_unavailable_is_retried_by_the_service_config(
    scripted: tuple[ScriptedService, int],
) -> None:
    service, port = scripted
    service.unavailable_first = RETRY_MAX_ATTEMPTS - 1
    with ObservationClient(f"127.0.0.1:{port}") as obs:
        result = obs.get("USDCOP")
    assert result.values.shape == (15,)
    assert service.get_attempts == RETRY_MAX_ATTEMPTS


def test_retries_are_bounded_by_max_attempts(scripted: tuple[ScriptedService, int]) -> None:
    service, port = scripted
    service.unavailable_first = 100
    with ObservationClient(f"127.0.0.1:{port}") as obs, pytest.raises(ObservationRpcError) as info:
        obs.get("USDCOP")
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert "scripted outage" in str(info.value)
    assert service.get_attempts == RETRY_MAX_ATTEMPTS


def test_a_server_that_starts_a_moment_later_is_reached_by_retries() -> None:
    port = free_port()
    service = ScriptedService()
    started: list[grpc.Server] = []

    def start_later() -> None:
        time.sleep(0.05)
        started.append(start(service, port)[0])

    thread = threading.Thread(target=start_later)
    thread.start()
    try:
        with ObservationClient(f"127.0.0.1:{port}", timeout_s=3.0) as obs:
            assert obs.get("USDCOP").symbol == "USDCOP"
    finally:
        thread.join()
        for server in started:
            server.stop(grace=None)


def test_every_call_has_a_deadline(scripted: tuple[ScriptedService, int]) -> None:
    service, port = scripted
    service.stall_s = 1.0
    with ObservationClient(f"127.0.0.1:{port}", timeout_s=0.1) as obs:
        obs.check_contract()
        began = time.perf_counter()
        with pytest.raises(ObservationRpcError) as info:
            obs.get("USDCOP")
        elapsed = time.perf_counter() - began
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert elapsed < 0.5


def test_contract_is_checked_once_at_first_use(scripted: tuple[ScriptedService, int]) -> None:
    service, port = scripted
    with ObservationClient(f"127.0.0.1:{port}") as obs:
        obs.get("USDCOP")
        obs.get("USDCOP")
        obs.push_state("USDCOP", 0.5)
    assert service.describe_calls == 1


def test_contract_mismatch_is_raised_before_any_values(
    scripted: tuple[ScriptedService, int],
) -> None:
    service, port = scripted
    service.contract_hash = "0" * 64
    with ObservationClient(f"127.0.0.1:{port}") as obs, pytest.raises(ContractMismatch) as info:
        obs.get("USDCOP")
    assert info.value.served == "0" * 64
    assert "0" * 64 in str(info.value) and "upgrade" in str(info.value)
    assert service.get_attempts == 0


def test_a_short_answer_is_a_clear_error(scripted: tuple[ScriptedService, int]) -> None:
    service, port = scripted
    service.n_values = 14
    with ObservationClient(f"127.0.0.1:{port}") as obs, pytest.raises(MalformedObservation):
        obs.get("USDCOP")


def test_a_passed_in_channel_is_not_closed(scripted: tuple[ScriptedService, int]) -> None:
    _, port = scripted
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        with ObservationClient(channel=channel) as obs:
            obs.get("USDCOP")
        # still usable after the client closed
        with ObservationClient(channel=channel) as obs:
            assert obs.get("USDCOP").symbol == "USDCOP"
    finally:
        channel.close()


def test_async_client_retries_and_checks_the_contract(
    scripted: tuple[ScriptedService, int],
) -> None:
    service, port = scripted
    service.unavailable_first = 2

    async def run() -> tuple[int, bool]:
        async with AsyncObservationClient(f"127.0.0.1:{port}") as obs:
            results = await asyncio.gather(*(obs.get("USDCOP") for _ in range(3)))
            applied = await obs.push_state("USDCOP", -1.0)
        return len(results), applied

    assert asyncio.run(run()) == (3, True)
    assert service.describe_calls == 1
    assert service.get_attempts == 2 + 3
