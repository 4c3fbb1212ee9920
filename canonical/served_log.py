"""What the server served, as the entries both sides of the skew check share.

What enters: one answer of GetObservation / GetObservations (symbol, when it was sent, whether
from the server's cache, and per view in contract order its event time, source and fallback
reason, and the 15 float32 in contract order). What leaves: the Redis stream layout
(``<project>:served``; the server appends one entry per batch of answers, ``pipeline.served_log``
drains) and :class:`ServedRow`, a decoded answer. An answer is a 98-byte binary record (the
values as their 60 packed little-endian float32 bytes: exactly what was served, no text round
trip); one XADD carries a whole batch, which is what keeps the log's cost off the served p99
(one entry per answer cost +19 % p99 on the cached path, see the server README). No pandas here
(the server imports this module).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from canonical import contract

STREAM_SUFFIX = ":served"
_VALUES = struct.Struct(f"<{contract.N_FEATURES}f")
SOURCES = ("online_store", "fallback")


def stream_key(project: str) -> bytes:
    """The Redis stream of a Feast project's served answers."""
    return project.encode() + STREAM_SUFFIX.encode()


Record = tuple[str, int, bool, tuple[tuple[str, str, str], ...], tuple[int, ...], bytes]
"""One answer: symbol, served-at ns, from_cache, (view, source, reason) per view, event time
per view (ns), the 60 packed values."""

_N_VIEWS = len(contract.VIEWS)
# symbol index, served-at ns, from_cache, event time per view, label index per view, values
_RECORD = struct.Struct(f"<HqB{_N_VIEWS}q{_N_VIEWS}B{_VALUES.size}s")


def encode_batch(records: list[Record]) -> dict[bytes, bytes]:
    """One stream entry holding ``records`` (fixed-size binary records; the symbols and the
    ``source/reason`` labels they use are listed once in the entry)."""
    symbols: dict[str, int] = {}
    labels: dict[str, int] = {}
    body = bytearray()
    for symbol, served_ns, from_cache, views, times, values in records:
        sym = symbols.setdefault(symbol, len(symbols))
        codes = [
            labels.setdefault(f"{source}/{reason}", len(labels)) for _, source, reason in views
        ]
        body += _RECORD.pack(sym, served_ns, from_cache, *times, *codes, values)
    return {
        b"symbols": ",".join(symbols).encode(),
        b"labels": ",".join(labels).encode(),
        b"records": bytes(body),
    }


@dataclass(frozen=True)
class ServedRow:
    """One served answer, decoded."""

    symbol: str
    served_at_ns: int
    from_cache: bool
    event_times_ns: tuple[int, ...]
    """Per view, contract order."""
    sources: tuple[str, ...]
    """Per view: ``online_store`` or ``fallback``."""
    reasons: tuple[str, ...]
    """Per view: ``none`` or the fallback reason."""
    values: tuple[float, ...]
    """The 15 float32 as served (Python floats holding float32 values exactly)."""


def decode_batch(fields: dict[bytes, bytes]) -> list[ServedRow]:
    """The answers of one stream entry; ValueError / KeyError / struct.error when it is not
    one."""
    symbols = fields[b"symbols"].decode().split(",")
    labels = [label.split("/", 1) for label in fields[b"labels"].decode().split(",")]
    if any(len(pair) != 2 or pair[0] not in SOURCES for pair in labels):
        raise ValueError(f"bad labels {fields[b'labels']!r}")
    body = fields[b"records"]
    if len(body) % _RECORD.size:
        raise ValueError(f"records of {len(body)} bytes are not whole {_RECORD.size}-byte records")
    rows = []
    for unpacked in _RECORD.iter_unpack(body):
        sym, served_ns, from_cache = unpacked[0], unpacked[1], unpacked[2]
        times = tuple(unpacked[3 : 3 + _N_VIEWS])
        codes = unpacked[3 + _N_VIEWS : 3 + 2 * _N_VIEWS]
        rows.append(
            ServedRow(
                symbol=symbols[sym],
                served_at_ns=served_ns,
                from_cache=bool(from_cache),
                event_times_ns=times,
                sources=tuple(labels[c][0] for c in codes),
                reasons=tuple(labels[c][1] for c in codes),
                values=_VALUES.unpack(unpacked[-1]),
            )
        )
    return rows
