"""The agent's positions as events: the truth the state view's offline rows are derived from.

What enters: the positions a ``PushState`` applied (symbol, event time, position,
time_normalized), and the state view's offline rows. What leaves: the Redis stream layout both
sides share (the server appends one entry per applied push, in the same transaction as the
online write; the pipeline drains the stream into the offline ``state_events`` table). The
server imports this module: no pandas here (``canonical.offline_tables.apply_state_events``
derives the rows).

The rule. A state row at time T of a symbol holds the position of the symbol's latest event
at or before T (point in time: what the agent held then) and ``synthetic = False``. A row with no
event at or before it keeps the generator's :func:`canonical.builder.position_rule` value and
``synthetic = True``: generated history before the agent first acted. ``time_normalized`` is
always the row's own (a function of T), never the event's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STREAM_SUFFIX = ":state_events"
SYNTHETIC = "synthetic"
"""The state view's column saying its position came from the rule, not from an event."""
EVENT_COLUMNS = ("symbol", "event_timestamp", "position", "time_normalized")
"""The offline ``state_events`` table's columns (plus ``recorded``, when it was drained)."""


def stream_key(project: str) -> bytes:
    """The Redis stream of a Feast project's applied pushes."""
    return project.encode() + STREAM_SUFFIX.encode()


@dataclass(frozen=True)
class StateEvent:
    """One applied push."""

    symbol: str
    event_time_ns: int
    position: float
    time_normalized: float

    def fields(self) -> dict[bytes, bytes]:
        """The stream entry (floats as ``repr``: a float32 value round-trips exactly)."""
        return {
            b"symbol": self.symbol.encode(),
            b"event_time_ns": str(self.event_time_ns).encode(),
            b"position": repr(float(self.position)).encode(),
            b"time_normalized": repr(float(self.time_normalized)).encode(),
        }

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> StateEvent:
        """Decode a stream entry; ValueError (or KeyError) when it is not one."""
        position = float(fields[b"position"])
        if not (math.isfinite(position) and -1.0 <= position <= 1.0):
            raise ValueError(f"position out of [-1, 1]: {position!r}")
        return cls(
            symbol=fields[b"symbol"].decode(),
            event_time_ns=int(fields[b"event_time_ns"]),
            position=position,
            time_normalized=float(fields[b"time_normalized"]),
        )
