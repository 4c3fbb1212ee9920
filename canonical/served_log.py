"""What the server served, as the entries both sides of the skew check share.

What enters: one answer of GetObservation / GetObservations (symbol, when it was sent, whether
from the server's cache, and per view in contract order its event time, source and fallback
reason, and the 15 float32 in contract order). What leaves: the Redis stream layout
(``<project>:served``; the server appends, ``pipeline.served_log`` drains) and
:class:`ServedRow`, the decoded entry. The values travel as their 60 packed little-endian
float32 bytes: exactly what was served, with no text round trip. No pandas here (the server
imports this module).
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


def served_fields(
    symbol: str,
    served_at_ns: int,
    *,
    from_cache: bool,
    views: tuple[tuple[str, str, str], ...],
    event_times_ns: tuple[int, ...],
    packed_values: bytes,
) -> dict[bytes, bytes]:
    """One stream entry. ``views``: (view, source, reason) per view in contract order."""
    return {
        b"symbol": symbol.encode(),
        b"served_at_ns": str(served_at_ns).encode(),
        b"from_cache": b"1" if from_cache else b"0",
        b"event_times_ns": ",".join(map(str, event_times_ns)).encode(),
        b"sources": ",".join(source for _, source, _ in views).encode(),
        b"reasons": ",".join(reason for _, _, reason in views).encode(),
        b"values": packed_values,
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

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> ServedRow:
        """Decode a stream entry; ValueError / KeyError / struct.error when it is not one."""
        times = tuple(int(t) for t in fields[b"event_times_ns"].split(b","))
        sources = tuple(fields[b"sources"].decode().split(","))
        reasons = tuple(fields[b"reasons"].decode().split(","))
        n_views = len(contract.VIEWS)
        if not len(times) == len(sources) == len(reasons) == n_views:
            raise ValueError(f"expected {n_views} views per entry")
        if not set(sources) <= set(SOURCES):
            raise ValueError(f"unknown source in {sources}")
        return cls(
            symbol=fields[b"symbol"].decode(),
            served_at_ns=int(fields[b"served_at_ns"]),
            from_cache=fields[b"from_cache"] == b"1",
            event_times_ns=times,
            sources=sources,
            reasons=reasons,
            values=_VALUES.unpack(fields[b"values"]),
        )
