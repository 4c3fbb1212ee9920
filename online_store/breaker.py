"""A circuit breaker in front of Redis, so a dead store costs nothing per call.

What enters: the outcome of each store call. What leaves: whether the next call may try Redis.

    CLOSED --(threshold consecutive failures)--> OPEN --(open_ms elapsed)--> HALF_OPEN
    HALF_OPEN --(the one probe call succeeds)--> CLOSED
    HALF_OPEN --(the probe fails)--------------> OPEN (for another open_ms)
    any -------(trip(): a confirmed failure)---> OPEN

While OPEN every call goes straight to the fallback; in HALF_OPEN exactly one call (the probe)
tries Redis and the others keep using the fallback until it reports. All state changes happen
on the event loop thread between awaits, so no lock is needed.
"""

from __future__ import annotations

import enum

from core.clock import Clock


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures and opens for ``open_ms`` after ``failure_threshold``."""

    def __init__(self, failure_threshold: int, open_ms: float, clock: Clock) -> None:
        self._failure_threshold = failure_threshold
        self._open_ns = int(open_ms * 1_000_000)
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._opened_at_ns = 0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        return self._state

    def allow(self) -> bool:
        """True when this call may use Redis; a True in HALF_OPEN makes it the probe.

        Every True must be followed by exactly one of record_success/record_failure/release.
        """
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if self._clock.monotonic_ns() - self._opened_at_ns < self._open_ns:
                return False
            self._state = BreakerState.HALF_OPEN
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def record_success(self) -> None:
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self._consecutive_failures += 1
        self._probe_in_flight = False
        if (
            self._state is BreakerState.HALF_OPEN
            or self._consecutive_failures >= self._failure_threshold
        ):
            self._state = BreakerState.OPEN
            self._opened_at_ns = self._clock.monotonic_ns()

    def trip(self) -> None:
        """Open now: a failure confirmed apart from the request path (``store_health``)."""
        self._state = BreakerState.OPEN
        self._opened_at_ns = self._clock.monotonic_ns()
        self._consecutive_failures = max(self._consecutive_failures, self._failure_threshold)

    def release(self) -> None:
        """The call ended without a verdict on Redis (e.g. cancelled by its caller)."""
        self._probe_in_flight = False
