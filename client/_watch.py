"""What the sync and async watch loops share: the request, resume, reconnect policy.

What enters: the symbols to watch, the stream's messages and its failures. What leaves: the
``ObservationResult`` of each change (never the same observation twice for a symbol, also
across a reconnect: the server re-sends every symbol's current observation on each new
stream, and the unchanged ones are skipped), heartbeats swallowed, and the decision to
reconnect (with backoff) or to raise.

A stream is considered dead when nothing (observation or heartbeat) arrived for
``_SILENCE_FACTOR`` heartbeat periods; it is then cancelled and reopened.
"""

from __future__ import annotations

import math

import grpc
from usdcop.observation.v1 import observation_pb2 as pb

from client._result import ObservationResult, result_from_proto

_SILENCE_FACTOR = 3.0
_BACKOFF_MIN_S = 0.05
_BACKOFF_MAX_S = 2.0
# Worth another stream: the server went away, is full, or the stream went silent.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)


class WatchState:
    """One watch across its reconnections."""

    def __init__(
        self,
        symbols: list[str] | tuple[str, ...],
        heartbeat_s: float,
        expected_hash: str | None,
        reconnect: bool,
    ) -> None:
        if not symbols:
            raise ValueError("watch at least one symbol")
        if not (heartbeat_s > 0 and math.isfinite(heartbeat_s)):
            raise ValueError(f"heartbeat_s must be a positive number, got {heartbeat_s!r}")
        self.request = pb.WatchObservationsRequest(
            symbols=list(symbols), heartbeat_interval_ms=max(1, round(heartbeat_s * 1000))
        )
        self.silence_limit_s = _SILENCE_FACTOR * heartbeat_s
        """No message for this long: the stream is dead, reopen it."""
        self.reconnect = reconnect
        self.reconnects = 0
        """Streams reopened so far."""
        self._expected_hash = expected_hash
        self._last: dict[str, bytes] = {}
        self._backoff_s = _BACKOFF_MIN_S

    def accept(self, message: pb.WatchObservationsResponse) -> ObservationResult | None:
        """The result to hand out for ``message``, or None (a heartbeat, or already seen)."""
        self._backoff_s = _BACKOFF_MIN_S  # the stream works
        if message.WhichOneof("event") != "observation":
            return None
        observation = message.observation
        content = _content(observation)
        if self._last.get(observation.symbol) == content:
            return None
        result = result_from_proto(observation, self._expected_hash)
        self._last[observation.symbol] = content
        return result

    def retry_after(self, code: grpc.StatusCode | None) -> float | None:
        """Seconds to wait before reopening after a stream ended with ``code`` (None: it
        ended cleanly), or None when the error must be raised."""
        if not self.reconnect or (code is not None and code not in RETRYABLE):
            return None
        delay = self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, _BACKOFF_MAX_S)
        self.reconnects += 1
        return delay


def _content(observation: pb.Observation) -> bytes:
    """The observation without the fields that change on every answer."""
    copy = pb.Observation()
    copy.CopyFrom(observation)
    copy.ClearField("served_at")
    copy.ClearField("from_cache")
    return copy.SerializeToString(deterministic=True)
