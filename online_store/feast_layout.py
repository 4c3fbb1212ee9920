"""Feast's Redis online-store layout (feast 0.67), re-implemented without importing feast.

What enters: a symbol, a project, view and feature names, raw field bytes from Redis. What
leaves: the exact key and field bytes Feast reads and writes, and decoded values.

The layout, as Feast's ``RedisOnlineStore`` writes it:

- one Redis hash per entity; its key is ``serialize_entity_key(v3)`` followed directly by the
  project name (UTF-8). v3, little-endian u32s: number of join keys; per key: type STRING (2),
  length, bytes; per value: type, length, bytes (a string symbol: type STRING, UTF-8 bytes).
- a feature's field is murmur3_32 (seed 0, unsigned) of ``"<view>:<feature>"``, 4 bytes LE;
- a view's event time is the field ``_ts:<view>``: a serialized ``google.protobuf.Timestamp``;
- a feature's value is a serialized ``feast.types.Value``; a float32 is 5 bytes, tag ``0x35``.

Feature-view versioning (``_v{N}`` name suffixes) is not used by this project's Feast repo; the
read plan uses the contract's plain view names, so a versioned registry would read as missing
views (and the server would fall back), never as wrong values.

``import feast`` costs seconds; the tests compare these bytes with Feast's own functions.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable

import mmh3

_U32 = struct.Struct("<I")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_VALUE_TYPE_STRING = 2  # feast.types.ValueType.STRING

# Wire tags of feast.types.Value's `val` oneof members this server turns into numbers.
_TAG_FLOAT = 0x35  # field 6 float_val, wire type 5 (32-bit)
_FLOAT32_LEN = 5
_FIELD_INT32, _FIELD_INT64, _FIELD_DOUBLE, _FIELD_FLOAT = 3, 4, 5, 6
_NUMERIC_FIELDS = frozenset((_FIELD_INT32, _FIELD_INT64, _FIELD_DOUBLE, _FIELD_FLOAT))
# Wire type of every member of Value's `val` oneof (feast/protos/feast/types/Value.proto):
# scalars as below, every other member (lists, sets, maps, strings, bytes) length-delimited.
# A field with an unknown number or a mismatched wire type is an unknown field to protobuf's
# parser, so it does not change which member is set.
_ONEOF_WIRE_TYPES: dict[int, int] = {
    **{n: 2 for n in (*range(1, 3), *range(11, 19), *range(20, 30), *range(32, 49))},
    3: 0,  # int32_val
    4: 0,  # int64_val
    5: 1,  # double_val
    6: 5,  # float_val
    7: 0,  # bool_val
    8: 0,  # unix_timestamp_val
    19: 0,  # null_val
}
_MAX_VARINT_BYTES = 10
_FLOAT32_MAX = 3.4028234663852886e38


def entity_key(symbol: str, project: str) -> bytes:
    """Redis key of the entity ``symbol=<symbol>``: entity key serialization v3 + project."""
    join_key = b"symbol"
    value = symbol.encode("utf-8")
    return b"".join(
        (
            _U32.pack(1),
            _U32.pack(_VALUE_TYPE_STRING),
            _U32.pack(len(join_key)),
            join_key,
            _U32.pack(_VALUE_TYPE_STRING),
            _U32.pack(len(value)),
            value,
            project.encode("utf-8"),
        )
    )


def feature_field(view: str, feature: str) -> bytes:
    """Hash field of one feature: murmur3_32 of ``view:feature``, unsigned, 4 bytes LE."""
    return _U32.pack(mmh3.hash(f"{view}:{feature}", seed=0, signed=False))


def ts_field(view: str) -> bytes:
    """Hash field holding the view's event time (a serialized protobuf Timestamp)."""
    return b"_ts:" + view.encode("utf-8")


def _readvarint(raw: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the unsigned varint at ``pos``; ValueError when malformed."""
    result = 0
    shift = 0
    end = min(len(raw), pos + _MAX_VARINT_BYTES)
    while pos < end:
        byte = raw[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise ValueError("truncated or overlong varint")


def _to_signed64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _iter_fields(raw: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of every field; ValueError on malformed bytes.

    Scalars (varint, fixed64, fixed32) come back as their raw unsigned integer; length-
    delimited fields as bytes. Groups (wire types 3/4) are rejected: Value has none.
    """
    fields: list[tuple[int, int, int | bytes]] = []
    pos = 0
    size = len(raw)
    while pos < size:
        key, pos = _readvarint(raw, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        value: int | bytes
        if wire_type == 0:
            value, pos = _readvarint(raw, pos)
        elif wire_type == 1:
            if pos + 8 > size:
                raise ValueError("truncated fixed64")
            value = int.from_bytes(raw[pos : pos + 8], "little")
            pos += 8
        elif wire_type == 5:
            if pos + 4 > size:
                raise ValueError("truncated fixed32")
            value = int.from_bytes(raw[pos : pos + 4], "little")
            pos += 4
        elif wire_type == 2:
            length, pos = _readvarint(raw, pos)
            if pos + length > size:
                raise ValueError("truncated length-delimited field")
            value = raw[pos : pos + length]
            pos += length
        else:
            raise ValueError("unsupported wire type")
        fields.append((number, wire_type, value))
    return fields


def _as_float32(value: float) -> float | None:
    """``value`` rounded to float32, or None when it is not finite there."""
    if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
        return None
    rounded: float = _F32.unpack(_F32.pack(value))[0]
    return rounded if math.isfinite(rounded) else None


def decode_value(raw: bytes | None) -> float | None:
    """A serialized ``feast.types.Value`` as a float32-representable float, or None.

    None means "this feature is missing": an absent field (nil from HMGET), an empty Value
    (Feast's null), ``null_val``, a bool, a timestamp, a string/bytes/list/map, a non-finite
    number, a double outside float32's range, or bytes that are not a valid Value. Like
    protobuf's parser, the last member of the oneof on the wire wins.
    """
    if raw is None:
        return None
    if len(raw) == _FLOAT32_LEN and raw[0] == _TAG_FLOAT:
        # Fast path: Feast writes a Float32 feature as exactly these 5 bytes.
        value: float = _F32.unpack_from(raw, 1)[0]
        return value if math.isfinite(value) else None
    member = _last_oneof_member(raw)
    if member is None:
        return None  # an empty Value (Feast's null), or bytes that are not a Value
    number, payload = member
    if number not in _NUMERIC_FIELDS or isinstance(payload, bytes):
        return None  # bool/timestamp/null/strings/lists/... are not numbers for this contract
    return _NUMBER_DECODERS[number](payload)


def _last_oneof_member(raw: bytes) -> tuple[int, int | bytes] | None:
    """The Value's oneof member as (field number, payload): the last one on the wire wins."""
    try:
        fields = _iter_fields(raw)
    except ValueError:
        return None
    member: tuple[int, int | bytes] | None = None
    for number, wire_type, payload in fields:
        if _ONEOF_WIRE_TYPES.get(number) == wire_type:
            member = (number, payload)
    return member


def _int32(payload: int) -> float:
    # protobuf keeps the low 32 bits of an int32 varint (negatives are sign-extended)
    low = payload & 0xFFFFFFFF
    return float(low - (1 << 32) if low >= 1 << 31 else low)


_NUMBER_DECODERS: dict[int, Callable[[int], float | None]] = {
    _FIELD_FLOAT: lambda payload: _as_float32(_F32.unpack(payload.to_bytes(4, "little"))[0]),
    _FIELD_DOUBLE: lambda payload: _as_float32(_F64.unpack(payload.to_bytes(8, "little"))[0]),
    _FIELD_INT32: _int32,
    _FIELD_INT64: lambda payload: _as_float32(float(_to_signed64(payload))),
}
"""Each numeric member's payload (a fixed32/fixed64/varint read as an int) as a float32 value."""


@functools.lru_cache(maxsize=4096)
def decode_timestamp_ns(raw: bytes | None) -> int | None:
    """A serialized ``google.protobuf.Timestamp`` as Unix nanoseconds, or None when absent/invalid.

    An empty message is the epoch (what Feast's parser would read); Feast treats a zero
    previous timestamp as "none", and so does this server's TTL check (it is long expired).
    Memoized: a view's ``_ts`` changes once per materialization, and is read on every miss.
    """
    if raw is None:
        return None
    try:
        fields = _iter_fields(raw)
    except ValueError:
        return None
    seconds = 0
    nanos = 0
    for number, wire_type, payload in fields:
        if isinstance(payload, bytes):
            return None
        if number == 1 and wire_type == 0:
            seconds = _to_signed64(payload)
        elif number == 2 and wire_type == 0:
            nanos = _to_signed64(payload)
        else:
            return None
    if not 0 <= nanos < 1_000_000_000:
        return None
    return seconds * 1_000_000_000 + nanos


def varint(value: int) -> bytes:
    """Protobuf base-128 varint (a negative int as its 64-bit two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_float32(value: float) -> bytes:
    """``feast.types.Value(float_val=value)`` serialized (5 bytes)."""
    return bytes((_TAG_FLOAT,)) + _F32.pack(value)


def encode_double(value: float) -> bytes:
    """``feast.types.Value(double_val=value)`` serialized (9 bytes)."""
    return bytes(((_FIELD_DOUBLE << 3) | 1,)) + _F64.pack(value)


def encode_int64(value: int) -> bytes:
    """``feast.types.Value(int64_val=value)`` serialized."""
    return bytes(((_FIELD_INT64 << 3),)) + varint(value)


def encode_timestamp(ns: int) -> bytes:
    """``google.protobuf.Timestamp`` of Unix nanoseconds ``ns``, serialized as protobuf does.

    Zero-valued fields are omitted (proto3), so the epoch is ``b""``.
    """
    seconds, nanos = divmod(ns, 1_000_000_000)
    out = b""
    if seconds:
        out += b"\x08" + varint(seconds)
    if nanos:
        out += b"\x10" + varint(nanos)
    return out
