"""Feast's Redis layout: golden bytes, and equality with Feast's own encoders."""

from __future__ import annotations

import math
import struct

import pytest

from canonical import contract
from online_store import feast_layout
from online_store.read_plan import VIEW_LAYOUTS, read_plan

# Pinned bytes (computed once with feast 0.67's serialize_entity_key/_mmh3; a change here
# means the server would no longer read what Feast writes).
GOLDEN_KEY_USDCOP = (
    b"\x01\x00\x00\x00"  # one join key
    b"\x02\x00\x00\x00\x06\x00\x00\x00symbol"  # STRING, len 6, "symbol"
    b"\x02\x00\x00\x00\x06\x00\x00\x00USDCOP"  # STRING, len 6, "USDCOP"
    b"usdcop_trading"  # project, no separator
)
GOLDEN_FIELDS = {
    ("technical_features", "log_ret_5m"): bytes.fromhex("5d0b6314"),
    ("macro_features", "dxy_z"): bytes.fromhex("0601e5b2"),
    ("state_features", "position"): bytes.fromhex("60c381a5"),
}


def test_entity_key_golden_bytes() -> None:
    assert feast_layout.entity_key("USDCOP", "usdcop_trading") == GOLDEN_KEY_USDCOP
    # Length check: 4 + (4 + 4 + 6) + (4 + 4 + 6) = 32 bytes of entity key, plus the project.
    assert len(feast_layout.entity_key("USDCOP", "fxobs")) == 37


@pytest.mark.parametrize(("view_feature", "expected"), list(GOLDEN_FIELDS.items()))
def test_feature_field_golden_bytes(view_feature: tuple[str, str], expected: bytes) -> None:
    assert feast_layout.feature_field(*view_feature) == expected


def test_ts_field() -> None:
    assert feast_layout.ts_field("state_features") == b"_ts:state_features"


def test_read_plan_layout_follows_the_contract() -> None:
    plan = read_plan("USDCOP", contract.PROJECT)
    assert plan.key == GOLDEN_KEY_USDCOP
    assert len(plan.fields) == contract.N_FEATURES + len(contract.VIEWS) == 18
    for feature in contract.FEATURES:
        assert plan.fields[feature.index] == feast_layout.feature_field(feature.view, feature.name)
    assert [plan.fields[v.ts_slot] for v in VIEW_LAYOUTS] == [
        b"_ts:technical_features",
        b"_ts:macro_features",
        b"_ts:state_features",
    ]
    assert [v.ttl_ns for v in VIEW_LAYOUTS] == [86_400 * 10**9, 86_400 * 10**9, 3_600 * 10**9]
    assert len(set(plan.fields)) == 18


def test_encoders_golden_bytes() -> None:
    assert feast_layout.encode_float32(0.5) == bytes.fromhex("350000003f")
    assert feast_layout.encode_double(0.5) == bytes.fromhex("29000000000000e03f")
    assert feast_layout.encode_int64(7) == bytes.fromhex("2007")
    assert feast_layout.encode_timestamp(0) == b""
    assert feast_layout.encode_timestamp(1_700_000_000_123_456_789) == bytes.fromhex(
        "0880e2cfaa0610959aef3a"  # seconds 1700000000, nanos 123456789
    )


# --- decode_value -----------------------------------------------------------------------


def test_decode_float32_fast_path() -> None:
    assert feast_layout.decode_value(b"\x35" + struct.pack("<f", 1.25)) == 1.25
    assert feast_layout.decode_value(b"\x35" + struct.pack("<f", -0.0)) == 0.0
    value = feast_layout.decode_value(b"\x35" + struct.pack("<f", 0.1))
    assert value == struct.unpack("<f", struct.pack("<f", 0.1))[0]


def test_decode_double_rounds_to_float32() -> None:
    value = feast_layout.decode_value(feast_layout.encode_double(0.1))
    assert value == struct.unpack("<f", struct.pack("<f", 0.1))[0]
    assert feast_layout.decode_value(feast_layout.encode_double(1e300)) is None  # > float32 max


def test_decode_ints() -> None:
    assert feast_layout.decode_value(bytes.fromhex("2007")) == 7.0  # int64 7
    assert feast_layout.decode_value(bytes.fromhex("18fdffffffffffffffff01")) == -3.0  # int32 -3
    assert feast_layout.decode_value(feast_layout.encode_int64(-(2**40))) == -(2.0**40)


@pytest.mark.parametrize(
    "raw",
    [
        None,  # absent field (nil from HMGET)
        b"",  # empty Value: Feast's null
        bytes.fromhex("3801"),  # bool_val true: not a number for this contract
        bytes.fromhex("4001"),  # unix_timestamp_val
        bytes.fromhex("980100"),  # null_val (field 19, varint 0)
        b"\x12\x03abc",  # string_val
        b"\x82\x01\x05\x0a\x03\x35\x00\x00",  # float_list_val-ish / malformed list
        b"\x35\x00\x00",  # truncated float
        b"\x35" + struct.pack("<f", math.nan),  # non-finite
        b"\x35" + struct.pack("<f", math.inf),
        feast_layout.encode_double(math.nan),
        b"\xff\xff\xff\xff\xff",  # garbage
        b"\x18" + b"\xff" * 11,  # overlong varint
        b"\x00\x01",  # field number 0
        b"\x33",  # group wire type
        b"\x30\x05",  # float_val's number with a varint: unknown field -> no member set
    ],
)
def test_decode_missing_or_invalid(raw: bytes | None) -> None:
    assert feast_layout.decode_value(raw) is None


def test_decode_last_member_wins_and_unknown_fields_ignored() -> None:
    raw = feast_layout.encode_int64(3) + feast_layout.encode_float32(2.5)
    assert feast_layout.decode_value(raw) == 2.5
    # an unknown field (number 100, varint) after the member does not hide it
    assert feast_layout.decode_value(feast_layout.encode_double(4.0) + b"\xa0\x06\x01") == 4.0


def test_decode_timestamp() -> None:
    ns = 1_765_562_400_000_123_000
    assert feast_layout.decode_timestamp_ns(feast_layout.encode_timestamp(ns)) == ns
    assert feast_layout.decode_timestamp_ns(None) is None
    assert feast_layout.decode_timestamp_ns(b"") == 0
    assert feast_layout.decode_timestamp_ns(b"\x08") is None  # truncated
    assert feast_layout.decode_timestamp_ns(b"\x10\xff\xff\xff\xff\x0f") is None  # nanos too big
    assert feast_layout.decode_timestamp_ns(b"\x1a\x01x") is None  # not a Timestamp
    assert feast_layout.decode_timestamp_ns(b"\xde\xad\xbe\xef") is None


# --- against Feast's own code (importing feast is fine in tests) -------------------------


def test_matches_feast_serialization() -> None:
    from feast.infra.online_stores.helpers import _mmh3, _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    for symbol, project in [("USDCOP", contract.PROJECT), ("EUR_USD2", "fxobs"), ("X", "p")]:
        feast_key = _redis_key(
            project,
            EntityKey(join_keys=["symbol"], entity_values=[Value(string_val=symbol)]),
            entity_key_serialization_version=3,
        )
        assert feast_layout.entity_key(symbol, project) == feast_key
    for feature in contract.FEATURES:
        assert feast_layout.feature_field(feature.view, feature.name) == _mmh3(
            f"{feature.view}:{feature.name}"
        )
    for x in (0.0, -1.0, 0.25, 3.4e38, 1e-45):
        assert feast_layout.encode_float32(x) == Value(float_val=x).SerializeToString()
        assert feast_layout.encode_double(x) == Value(double_val=x).SerializeToString()


def test_decodes_every_numeric_feast_encoding() -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    def f32(x: float) -> float:
        return float(struct.unpack("<f", struct.pack("<f", x))[0])

    cases = [
        (Value(float_val=0.1), f32(0.1)),
        (Value(float_val=0.0), 0.0),
        (Value(double_val=-2.5e-3), f32(-2.5e-3)),
        (Value(int32_val=-2_000_000_000), f32(-2e9)),
        (Value(int32_val=0), 0.0),
        (Value(int64_val=-(2**62)), f32(-(2.0**62))),
        (Value(int64_val=123), 123.0),
        (Value(bool_val=True), None),
        (Value(unix_timestamp_val=1_700_000_000), None),
        (Value(string_val="1.0"), None),
        (Value(), None),
    ]
    for message, expected in cases:
        assert feast_layout.decode_value(message.SerializeToString()) == expected, message


def test_timestamp_matches_protobuf() -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    for ns in (0, 1, 999_999_999, 1_765_562_400_000_000_000, 1_765_562_400_123_456_789):
        ts = Timestamp()
        ts.FromNanoseconds(ns)
        assert feast_layout.encode_timestamp(ns) == ts.SerializeToString()
        assert feast_layout.decode_timestamp_ns(ts.SerializeToString()) == ns


def test_resp_command_matches_redis_py_packing() -> None:
    from redis.asyncio import Connection

    from online_store.reader import resp_command

    plan = read_plan("USDCOP", contract.PROJECT)
    args = (b"HMGET", plan.key, *plan.fields)
    assert resp_command(*args) == b"".join(Connection().pack_command(*args))
    assert resp_command(b"PING") == b"*1\r\n$4\r\nPING\r\n"
