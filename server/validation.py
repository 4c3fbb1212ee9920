"""Plausibility rules shared by the write side (PushState) and the read side (the store's views).

What enters: an event time as a protobuf ``Timestamp``'s (seconds, nanos), a view's decoded
values and ``_ts``, the current wall time and the allowed clock skew. What leaves: a valid
event time in Unix ns or an ``InvalidArgumentError`` with a precise message (write side), and a
``FallbackReason`` (read side): NONE, VIEW_FROM_FUTURE or VIEW_OUT_OF_RANGE.

The window, in both directions:

    now - view TTL  <=  event time  <=  now + max_clock_skew

An older push would be expired the moment it is written; a push from further in the future
would freeze the state (Feast's rule ignores every push that is not newer than the stored one),
so the skew is small (5 s by default): a future-dated push holds back correct ones for that long
at most, and their answers (applied=false) carry the stored event time that won.
A stored ``_ts`` beyond the skew, or values outside the contract's validity ranges
(``canonical.contract.VALID_RANGES``), mark the view corrupt: it comes from the fallback.
"""

from __future__ import annotations

from server.errors import InvalidArgumentError

_NS = 1_000_000_000
_TIMESTAMP_MIN_S = -62_135_596_800
"""0001-01-01T00:00:00Z, the smallest seconds a google.protobuf.Timestamp allows."""
_TIMESTAMP_MAX_S = 253_402_300_799
"""9999-12-31T23:59:59Z, the largest."""


def push_event_time_ns(
    seconds: int, nanos: int, *, now_ns: int, max_age_ns: int, max_skew_ns: int
) -> int:
    """The event time in Unix ns, or InvalidArgumentError naming what is wrong with it."""
    if not 0 <= nanos < _NS:
        raise InvalidArgumentError("event_time.nanos must be in [0, 999999999]")
    if not _TIMESTAMP_MIN_S <= seconds <= _TIMESTAMP_MAX_S:
        raise InvalidArgumentError(
            f"event_time.seconds must be a valid Timestamp (years 0001-9999), got {seconds}"
        )
    event_time_ns = seconds * _NS + nanos
    if event_time_ns > now_ns + max_skew_ns:
        raise InvalidArgumentError(
            f"event_time is {_seconds(event_time_ns - now_ns)} s in the future; "
            f"at most {_seconds(max_skew_ns)} s of clock skew is allowed (check the caller's clock)"
        )
    if event_time_ns < now_ns - max_age_ns:
        raise InvalidArgumentError(
            f"event_time is {_seconds(now_ns - event_time_ns)} s old; the state view's TTL "
            f"is {_seconds(max_age_ns)} s, so it would be expired at once"
        )
    return event_time_ns


def _seconds(ns: int) -> str:
    return f"{ns / _NS:.3f}".rstrip("0").rstrip(".")
