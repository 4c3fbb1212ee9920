"""decode_reply (TTL enforcement) and assemble_observation (per-view sources)."""

from __future__ import annotations

import grpc
import pytest
from usdcop.observation.v1 import observation_pb2 as pb

from canonical import contract
from online_store import feast_layout
from online_store.read_plan import VIEW_LAYOUTS
from online_store.reader import decode_reply
from server.errors import NoDataAvailableError
from server.fallback import FallbackRow
from server.observation import assemble_observation
from tests.plausible import PLAUSIBLE_VALUES

NOW_NS = 1_765_562_400_000_000_000  # 2025-12-12 18:00 UTC
HOUR_NS = 3_600 * 10**9
STORE_VALUES = list(PLAUSIBLE_VALUES)
FALLBACK = FallbackRow(
    values=tuple(-float(i) for i in range(contract.N_FEATURES)),
    event_time_ns=NOW_NS - 2 * HOUR_NS,
    state_event_time_ns=NOW_NS - 2 * HOUR_NS,
)


def reply(ts_ns: dict[str, int | None], values: list[float] | None = None) -> list[bytes | None]:
    values = STORE_VALUES if values is None else values
    out: list[bytes | None] = [feast_layout.encode_float32(v) for v in values]
    for layout in VIEW_LAYOUTS:
        ts = ts_ns.get(layout.name, NOW_NS - 60 * 10**9)
        out.append(None if ts is None else feast_layout.encode_timestamp(ts))
    return out


def test_all_fresh_from_store() -> None:
    read = decode_reply(reply({}), NOW_NS)
    obs = pb.Observation.FromString(
        assemble_observation("USDCOP", read, FALLBACK, NOW_NS).fresh_bytes
    )
    assert list(obs.values) == STORE_VALUES
    assert [v.source for v in obs.views] == [pb.VALUE_SOURCE_ONLINE_STORE] * 3
    assert [v.fallback_reason for v in obs.views] == [pb.FALLBACK_REASON_NONE] * 3
    assert [v.freshness for v in obs.views] == [pb.FRESHNESS_FRESH] * 3
    assert obs.views[0].event_time.ToNanoseconds() == NOW_NS - 60 * 10**9
    assert obs.contract_hash == contract.CONTRACT_HASH
    assert obs.contract_id == contract.CONTRACT_ID
    assert obs.served_at.ToNanoseconds() == NOW_NS
    assert not obs.from_cache


def test_expired_view_comes_from_fallback_with_its_own_freshness() -> None:
    # state TTL is 1 h: exactly 1 h old is still fresh, 1 h + 1 ns is expired
    fresh = decode_reply(reply({"state_features": NOW_NS - HOUR_NS}), NOW_NS)
    assert fresh.views[2].reason == pb.FALLBACK_REASON_NONE
    read = decode_reply(reply({"state_features": NOW_NS - HOUR_NS - 1}), NOW_NS)
    answer = assemble_observation("USDCOP", read, FALLBACK, NOW_NS)
    obs = pb.Observation.FromString(answer.fresh_bytes)
    assert list(obs.values[:13]) == STORE_VALUES[:13]
    assert list(obs.values[13:]) == [-13.0, -14.0]
    state = obs.views[2]
    assert state.source == pb.VALUE_SOURCE_COMPUTE_FALLBACK
    assert state.fallback_reason == pb.FALLBACK_REASON_VIEW_EXPIRED
    assert state.freshness == pb.FRESHNESS_EXPIRED  # the fallback's bar is 2 h old
    assert state.event_time.ToNanoseconds() == NOW_NS - 2 * HOUR_NS
    assert pb.Observation.FromString(answer.cached_bytes).from_cache


def test_missing_entity_view_and_corrupt_value() -> None:
    read = decode_reply([None] * 18, NOW_NS)
    assert {v.reason for v in read.views} == {pb.FALLBACK_REASON_ENTITY_MISSING}
    corrupt = reply({})
    corrupt[7] = b"\xde\xad"  # a macro feature
    corrupt[VIEW_LAYOUTS[0].ts_slot] = None  # technical view without _ts
    read = decode_reply(corrupt, NOW_NS)
    assert [v.reason for v in read.views] == [
        pb.FALLBACK_REASON_VIEW_MISSING,
        pb.FALLBACK_REASON_VIEW_MISSING,
        pb.FALLBACK_REASON_NONE,
    ]
    obs = pb.Observation.FromString(
        assemble_observation("USDCOP", read, FALLBACK, NOW_NS).fresh_bytes
    )
    assert list(obs.values[:13]) == list(FALLBACK.values[:13])
    assert list(obs.values[13:]) == STORE_VALUES[13:]
    # the fallback's technical/macro data is 2 h old: fresh for a 24 h TTL
    assert [v.freshness for v in obs.views] == [pb.FRESHNESS_FRESH] * 3


def test_store_unavailable_uses_fallback_for_every_view() -> None:
    obs = pb.Observation.FromString(
        assemble_observation("USDCOP", None, FALLBACK, NOW_NS).fresh_bytes
    )
    assert list(obs.values) == list(FALLBACK.values)
    assert {v.fallback_reason for v in obs.views} == {pb.FALLBACK_REASON_STORE_UNAVAILABLE}


def test_no_source_is_no_data_available() -> None:
    with pytest.raises(NoDataAvailableError) as raised:
        assemble_observation("USDCOP", None, None, NOW_NS)
    assert raised.value.public_message == (
        "no fresh data from the online store and no fallback data loaded for USDCOP"
    )
    # before the fallback's first refresh finished, the message says it is still loading
    with pytest.raises(NoDataAvailableError) as loading:
        assemble_observation("USDCOP", None, None, NOW_NS, fallback_loading=True)
    assert loading.value.status_code == grpc.StatusCode.UNAVAILABLE
    assert loading.value.public_message == (
        "no fresh data from the online store for USDCOP and the compute fallback is still "
        "loading (the server has just started): retry shortly"
    )
    # a fresh store needs no fallback at all
    read = decode_reply(reply({}), NOW_NS)
    assert (
        assemble_observation("USDCOP", read, None, NOW_NS).sources
        == (pb.VALUE_SOURCE_ONLINE_STORE,) * 3
    )


def test_concatenated_wire_format_equals_protobufs_own_message() -> None:
    corrupt = reply({"state_features": NOW_NS - HOUR_NS - 1})
    corrupt[7] = b"\xde\xad"
    read = decode_reply(corrupt, NOW_NS + 123_456_789)
    answer = assemble_observation("USDCOP", read, FALLBACK, NOW_NS + 123_456_789)

    def status(view: str, ns: int, freshness: int, source: int, reason: int) -> pb.ViewStatus:
        s = pb.ViewStatus(view=view, freshness=freshness, source=source, fallback_reason=reason)
        s.event_time.FromNanoseconds(ns)
        return s

    expected = pb.Observation(
        symbol="USDCOP",
        values=list(STORE_VALUES[:6]) + list(FALLBACK.values[6:]),
        contract_id=contract.CONTRACT_ID,
        contract_hash=contract.CONTRACT_HASH,
        views=[
            status("technical_features", NOW_NS - 60 * 10**9, 1, 1, 0),
            status("macro_features", FALLBACK.event_time_ns, 1, 2, 3),
            status("state_features", FALLBACK.state_event_time_ns, 2, 2, 4),
        ],
    )
    expected.served_at.FromNanoseconds(NOW_NS + 123_456_789)
    assert pb.Observation.FromString(answer.fresh_bytes) == expected
    # Re-serialized by protobuf, the bytes are canonical and parse back to the same message.
    assert pb.Observation.FromString(expected.SerializeToString()) == expected
    expected.from_cache = True
    assert pb.Observation.FromString(answer.cached_bytes) == expected
    assert answer.sources == (1, 2, 2)
