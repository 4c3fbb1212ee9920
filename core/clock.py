"""Time sources, injectable so tests never depend on the wall clock.

``wall_ns`` (Unix ns) judges freshness against event times and stamps ``served_at``;
``monotonic_ns`` times cache entries and the circuit breaker (immune to clock steps).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What the server asks of a clock."""

    def wall_ns(self) -> int:
        """Unix time, ns."""
        ...

    def monotonic_ns(self) -> int:
        """A monotonic time, ns (only differences matter)."""
        ...


class SystemClock:
    """The real clocks."""

    def wall_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()


class ManualClock:
    """A clock that moves only when told to; both readings advance together.

    >>> clock = ManualClock(wall_ns=1_700_000_000_000_000_000)
    >>> clock.advance(1.5)
    """

    def __init__(self, wall_ns: int, monotonic_ns: int = 0) -> None:
        self._wall_ns = wall_ns
        self._monotonic_ns = monotonic_ns

    def wall_ns(self) -> int:
        return self._wall_ns

    def monotonic_ns(self) -> int:
        return self._monotonic_ns

    def advance(self, seconds: float) -> None:
        step = round(seconds * 1_000_000_000)
        self._wall_ns += step
        self._monotonic_ns += step
