"""One step of the agent's loop, as it is logged, counted and recorded offline.

What enters: what the loop decided for one symbol. What leaves: a frozen :class:`Decision`
(``agent.loop`` makes it; ``agent.metrics`` counts it; the decision log writes it).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Decision:
    """One step of the loop, as logged."""

    decided_at: str
    symbol: str
    action: str
    """``push`` (position applied), ``stale`` (pushed but the store held a newer state) or
    ``hold``."""
    position: float | None
    reason: str
    values: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    observe_ms: float | None = None
    push_ms: float | None = None
    since_bar_ms: float | None = None
    """Bar close (the newest technical/macro event time) to this push's answer, wall clock."""
