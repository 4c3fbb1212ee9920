"""Assembles an Observation from the store's read and the fallback row, view by view.

What enters: a symbol, its ``StoreRead`` (or None when the store failed, timed out or its
breaker is open), its ``FallbackRow`` (or None) and the current wall time. What leaves: the
serialized ``Observation`` twice (``from_cache`` false and true), ready to send as is.

Per view: the store's values when present and fresh; otherwise the fallback's, marked
COMPUTE_FALLBACK with the reason (STORE_UNAVAILABLE / ENTITY_MISSING / VIEW_MISSING /
VIEW_EXPIRED) and the fallback's own freshness. A view neither can supply ->
NoDataAvailableError.

Wire assembly: protobuf defines concatenated serializations of one message type as their
merge (scalars: last wins; repeated fields: appended). So the answer is the concatenation of
pieces: a per-symbol header (symbol, contract id and hash, serialized by protobuf once), one
memoized piece per ViewStatus (serialized by protobuf; a view's status changes once per
materialization, not per call), the packed float32 values (one struct.pack) and served_at.
The unit tests check the result parses to the message protobuf would build. This cut the
fallback path's handler time from ~40 us to ~18 us a call here (cache-off and fallback paths).

Provenance: where each view of an answer came from (``ValueSource`` and ``FallbackReason`` as
labels), one interned ``Provenance`` per distinct combination (``provenance_of``), so metrics
count answers with one dict increment keyed by object identity and logs spot a change with one
``is`` comparison.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp
from usdcop.observation.v1 import observation_pb2 as pb

from canonical import contract
from online_store.read_plan import VIEW_LAYOUTS
from online_store.reader import StoreRead
from server.errors import NoDataAvailableError
from server.fallback import FallbackRow

# --- provenance (module docstring) -------------------------------------------------------


def source_label(source: pb.ValueSource.ValueType) -> str:
    """``online_store`` / ``fallback`` (metric and log label of a ValueSource)."""
    return "fallback" if source == pb.VALUE_SOURCE_COMPUTE_FALLBACK else "online_store"


def reason_label(reason: pb.FallbackReason.ValueType) -> str:
    """``none`` / ``store_unavailable`` / ``view_expired`` ... (label of a FallbackReason)."""
    return pb.FallbackReason.Name(reason).removeprefix("FALLBACK_REASON_").lower()


class Provenance:
    """Per view of one symbol's answer: (view, source label, reason label). Compared and hashed
    by identity: equal combinations are the same object (see ``provenance_of``)."""

    __slots__ = ("symbol", "views")

    def __init__(self, symbol: str, views: tuple[tuple[str, str, str], ...]) -> None:
        self.symbol = symbol
        self.views = views

    def __repr__(self) -> str:
        return f"Provenance({self.symbol!r}, {self.views!r})"


@functools.lru_cache(maxsize=1024)
def provenance_of(
    symbol: str,
    sources: tuple[pb.ValueSource.ValueType, ...],
    reasons: tuple[pb.FallbackReason.ValueType, ...],
) -> Provenance:
    """The interned provenance of an answer (one object per distinct argument tuple)."""
    return Provenance(
        symbol,
        tuple(
            (layout.name, source_label(source), reason_label(reason))
            for layout, source, reason in zip(VIEW_LAYOUTS, sources, reasons, strict=True)
        ),
    )


# --- assembly ----------------------------------------------------------------------------

_FROM_CACHE_TRUE = pb.Observation(from_cache=True).SerializeToString()
_NS_PER_S = 1_000_000_000
# Observation.values (field 2, packed float): tag, then length 4 * 15 = 60 as one varint byte.
_PACKED_VALUES = struct.Struct(f"<{contract.N_FEATURES}f")
_PACKED_VALUES_TAG = bytes((2 << 3 | 2, _PACKED_VALUES.size))
# Observation.served_at (field 7, message); a Timestamp is at most 17 bytes: a 1-byte length.
_SERVED_AT_TAG = bytes((7 << 3 | 2,))


@dataclass(frozen=True)
class SerializedObservation:
    """One answer, serialized once for a fresh read and once for later cache hits."""

    fresh_bytes: bytes
    """The Observation with from_cache = false."""
    cached_bytes: bytes
    """The same Observation with from_cache = true."""
    sources: tuple[pb.ValueSource.ValueType, ...]
    """ValueSource of each view (for logs and tests)."""
    content: bytes = b""
    """``fresh_bytes`` without ``served_at``: equal contents mean an unchanged observation."""
    store_valid_for_ns: int | None = None
    """When every view came from the store: how long until the first of them passes its
    view TTL (from assembly). None when a view came from the fallback (not push-invalidated)."""
    provenance: Provenance | None = None
    """Source and fallback reason of each view, interned (for metrics and logs)."""
    event_times_ns: tuple[int, ...] = ()
    """Event time of each view as served, Unix ns (for the freshness metric)."""
    packed_values: bytes = b""
    """The 15 values as served, packed little-endian float32 (for the served log)."""


@functools.lru_cache(maxsize=64)
def _header(symbol: str) -> bytes:
    return pb.Observation(
        symbol=symbol, contract_id=contract.CONTRACT_ID, contract_hash=contract.CONTRACT_HASH
    ).SerializeToString()


@functools.lru_cache(maxsize=4096)
def _view_status(
    view: str,
    event_time_ns: int,
    freshness: pb.Freshness.ValueType,
    source: pb.ValueSource.ValueType,
    reason: pb.FallbackReason.ValueType,
) -> bytes:
    """``Observation(views=[ViewStatus(...)])`` serialized: one view's piece of the answer."""
    seconds, nanos = divmod(event_time_ns, _NS_PER_S)
    status = pb.ViewStatus(
        view=view,
        event_time=Timestamp(seconds=seconds, nanos=nanos),
        freshness=freshness,
        source=source,
        fallback_reason=reason,
    )
    return pb.Observation(views=[status]).SerializeToString()


def assemble_observation(
    symbol: str,
    store: StoreRead | None,
    fallback: FallbackRow | None,
    now_ns: int,
    *,
    fallback_loading: bool = False,
) -> SerializedObservation:
    """The observation of ``symbol``; NoDataAvailableError when a view has no usable source
    (``fallback_loading``: the fallback's first refresh has not finished, say so)."""
    values: list[float] = [0.0] * contract.N_FEATURES
    pieces: list[bytes] = [_header(symbol)]
    sources: list[pb.ValueSource.ValueType] = []
    valid_for_ns: int | None = None if store is None else layout_ttl_max()
    reasons: list[pb.FallbackReason.ValueType] = []
    event_times: list[int] = []
    for position, layout in enumerate(VIEW_LAYOUTS):
        store_view = store.views[position] if store is not None else None
        if store_view is not None and store_view.values is not None:
            assert store_view.event_time_ns is not None  # decode_reply sets both or neither
            values[layout.feature_slots] = store_view.values
            source = pb.VALUE_SOURCE_ONLINE_STORE
            if valid_for_ns is not None:
                valid_for_ns = min(valid_for_ns, store_view.event_time_ns + layout.ttl_ns - now_ns)
            reason = pb.FALLBACK_REASON_NONE
            event_time_ns = store_view.event_time_ns
            pieces.append(
                _view_status(
                    layout.name,
                    store_view.event_time_ns,
                    pb.FRESHNESS_FRESH,
                    source,
                    pb.FALLBACK_REASON_NONE,
                )
            )
        elif fallback is not None:
            valid_for_ns = None
            event_time_ns = fallback.event_time_of(layout.name)
            values[layout.feature_slots] = fallback.values[layout.feature_slots]
            source = pb.VALUE_SOURCE_COMPUTE_FALLBACK
            reason = (
                pb.FALLBACK_REASON_STORE_UNAVAILABLE if store_view is None else store_view.reason
            )
            pieces.append(
                _view_status(
                    layout.name,
                    event_time_ns,
                    pb.FRESHNESS_FRESH
                    if now_ns - event_time_ns <= layout.ttl_ns
                    else pb.FRESHNESS_EXPIRED,
                    source,
                    reason,
                )
            )
        elif fallback_loading:
            raise NoDataAvailableError(
                f"no fresh data from the online store for {symbol} and the compute fallback "
                "is still loading (the server has just started): retry shortly"
            )
        else:
            raise NoDataAvailableError(
                f"no fresh data from the online store and no fallback data loaded for {symbol}"
            )
        sources.append(source)
        reasons.append(reason)
        event_times.append(event_time_ns)
    packed_values = _PACKED_VALUES.pack(*values)
    pieces.append(_PACKED_VALUES_TAG)
    pieces.append(packed_values)
    content = b"".join(pieces)
    seconds, nanos = divmod(now_ns, _NS_PER_S)
    served_at = Timestamp(seconds=seconds, nanos=nanos).SerializeToString()
    fresh_bytes = content + _SERVED_AT_TAG + bytes((len(served_at),)) + served_at
    return SerializedObservation(
        fresh_bytes=fresh_bytes,
        cached_bytes=fresh_bytes + _FROM_CACHE_TRUE,
        sources=tuple(sources),
        content=content,
        store_valid_for_ns=valid_for_ns,
        provenance=provenance_of(symbol, tuple(sources), tuple(reasons)),
        event_times_ns=tuple(event_times),
        packed_values=packed_values,
    )


def layout_ttl_max() -> int:
    """The longest view TTL (ns): the starting point of ``store_valid_for_ns``."""
    return max(layout.ttl_ns for layout in VIEW_LAYOUTS)
