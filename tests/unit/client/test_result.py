"""The client's answer handling: shape checks, contract checks, read-only values, the table."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pytest
from usdcop.observation.v1 import observation_pb2 as pb

from canonical.contract import CONTRACT_HASH, CONTRACT_ID, FEATURE_NAMES, VIEWS
from client import SERVICE_CONFIG, ContractMismatch, MalformedObservation, ObservationClient
from client._base import channel_options, to_timestamp
from client._cli import render_json, render_table
from client._result import result_from_proto

EVENT = datetime(2024, 3, 4, 15, 5, tzinfo=UTC)


def _observation(n_values: int = 15, contract_hash: str = CONTRACT_HASH) -> pb.Observation:
    obs = pb.Observation(
        symbol="USDCOP",
        values=[i + 0.25 for i in range(n_values)],
        contract_id=CONTRACT_ID,
        contract_hash=contract_hash,
        from_cache=True,
    )
    for view in VIEWS:
        status = obs.views.add(
            view=view.name,
            freshness=pb.FRESHNESS_FRESH,
            source=pb.VALUE_SOURCE_ONLINE_STORE,
            fallback_reason=pb.FALLBACK_REASON_NONE,
        )
        status.event_time.FromDatetime(EVENT)
    obs.views[2].source = pb.VALUE_SOURCE_COMPUTE_FALLBACK
    obs.views[2].fallback_reason = pb.FALLBACK_REASON_VIEW_EXPIRED
    obs.served_at.FromDatetime(EVENT)
    return obs


def test_result_values_are_read_only_float32_in_contract_order() -> None:
    result = result_from_proto(_observation(), CONTRACT_HASH)
    assert result.values.dtype == np.float32
    assert result.values.shape == (15,)
    assert result.values[3] == np.float32(3.25)
    with pytest.raises(ValueError, match="read-only"):
        result.values[0] = 1.0
    assert list(result.by_name()) == list(FEATURE_NAMES)
    assert np.asarray(result).tolist() == result.values.tolist()


def test_result_views_carry_provenance() -> None:
    result = result_from_proto(_observation(), CONTRACT_HASH)
    assert [v.view for v in result.views] == [v.name for v in VIEWS]
    assert result.views[0].event_time == EVENT
    assert result.views[0].freshness == "fresh"
    assert result.views[0].source == "online_store"
    assert result.views[2].source == "compute_fallback"
    assert result.views[2].fallback_reason == "view_expired"
    assert result.from_cache is True
    assert result.served_at == EVENT


@pytest.mark.parametrize("n_values", [0, 14, 16])
def test_wrong_number_of_values_is_a_clear_error(n_values: int) -> None:
    with pytest.raises(MalformedObservation, match=f"has {n_values} values; .*exactly 15"):
        result_from_proto(_observation(n_values), CONTRACT_HASH)


def test_other_contract_hash_in_an_answer_raises_with_both_hashes() -> None:
    with pytest.raises(ContractMismatch) as info:
        result_from_proto(_observation(contract_hash="f" * 64), CONTRACT_HASH)
    assert info.value.expected == CONTRACT_HASH
    assert info.value.served == "f" * 64
    assert CONTRACT_HASH in str(info.value) and "f" * 64 in str(info.value)
    # with the check off, the same answer is accepted
    assert result_from_proto(_observation(contract_hash="f" * 64), None).symbol == "USDCOP"


def test_retry_policy_is_declared_in_the_service_config() -> None:
    options = dict(channel_options())
    assert options["grpc.enable_retries"] == 1
    config = json.loads(options["grpc.service_config"])
    assert config == SERVICE_CONFIG
    policy = config["methodConfig"][0]["retryPolicy"]
    assert policy["retryableStatusCodes"] == ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]
    assert policy["maxAttempts"] >= 2
    assert config["methodConfig"][0]["name"] == [
        {"service": "usdcop.observation.v1.ObservationService"}
    ]


def test_naive_event_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        to_timestamp(datetime(2024, 1, 1, 13, 0))
    assert to_timestamp(EVENT).ToDatetime(tzinfo=UTC) == EVENT


def test_bad_timeout_and_target_plus_channel_are_refused() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        ObservationClient("127.0.0.1:1", timeout_s=0)
    with pytest.raises(ValueError, match="either target or channel"):
        ObservationClient("127.0.0.1:1", channel=object())  # type: ignore[arg-type]


def test_table_names_every_feature_with_its_source() -> None:
    table = render_table(result_from_proto(_observation(), CONTRACT_HASH))
    for name in FEATURE_NAMES:
        assert name in table
    assert "compute_fallback (view_expired)" in table
    assert "from_cache=True" in table
    payload = json.loads(render_json(result_from_proto(_observation(), CONTRACT_HASH)))
    assert list(payload["values"]) == list(FEATURE_NAMES)
    assert payload["views"][2]["source"] == "compute_fallback"


def test_importing_the_client_pulls_no_feast_pandas_or_redis() -> None:
    code = (
        "import sys, client, client.sync, client.aio, client._cli\n"
        "roots = {m.split('.')[0] for m in sys.modules}\n"
        "heavy = sorted(roots & {'feast', 'pandas', 'redis'})\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_results_compare_by_identity_not_elementwise() -> None:
    first = result_from_proto(_observation(), CONTRACT_HASH)
    second = result_from_proto(_observation(), CONTRACT_HASH)
    assert first == first and first != second  # no "truth value of an array is ambiguous"
    assert np.array_equal(first.values, second.values)
