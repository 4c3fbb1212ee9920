"""The agent's metrics as a node-exporter textfile, like the pipeline's (``pipeline.metrics``).

What enters: each :class:`~agent.decision.Decision`. What leaves: ``<folder>/usdcop_agent.prom``,
replaced atomically after every decision: decisions by action (push / stale / hold), when the
last one was taken and when the last push was applied, and the last observe and push latencies.
A textfile because the agent, like the pipeline's steps, is not scraped itself: node-exporter's
textfile collector exposes it (``ops/prometheus/alerts.yml`` alerts on an agent that stopped).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

if TYPE_CHECKING:
    from agent.decision import Decision

TEXTFILE_NAME = "usdcop_agent.prom"
ACTIONS = ("push", "stale", "hold")


class AgentMetrics:
    """Counts since the agent started, and the latest figures."""

    def __init__(self) -> None:
        self.decisions = dict.fromkeys(ACTIONS, 0)
        self.last_decision_s: float | None = None
        self.last_push_s: float | None = None
        self.observe_s: float | None = None
        self.push_s: float | None = None

    def record(self, decision: Decision) -> None:
        self.decisions[decision.action] = self.decisions.get(decision.action, 0) + 1
        moment = datetime.fromisoformat(decision.decided_at).timestamp()
        self.last_decision_s = moment
        if decision.action == "push":
            self.last_push_s = moment
        if decision.observe_ms is not None:
            self.observe_s = decision.observe_ms / 1000
        if decision.push_ms is not None:
            self.push_s = decision.push_ms / 1000

    def write(self, folder: Path) -> Path:
        """Replace the textfile; returns its path."""
        folder.mkdir(parents=True, exist_ok=True)
        registry = CollectorRegistry(auto_describe=True)
        count = Gauge(
            "usdcop_agent_decisions",
            "Decisions since the agent started, by action (push/stale/hold).",
            ["action"],
            registry=registry,
        )
        for action, n in self.decisions.items():
            count.labels(action=action).set(n)
        single = {
            "usdcop_agent_last_decision_timestamp_seconds": (
                "When the agent last decided (Unix seconds).",
                self.last_decision_s,
            ),
            "usdcop_agent_last_push_timestamp_seconds": (
                "When a position the agent pushed was last applied (Unix seconds).",
                self.last_push_s,
            ),
            "usdcop_agent_observe_seconds": (
                "GetObservation round trip of the last decision that read one, seconds.",
                self.observe_s,
            ),
            "usdcop_agent_push_seconds": (
                "PushState round trip of the last push, seconds.",
                self.push_s,
            ),
        }
        for name, (doc, value) in single.items():
            if value is not None:
                Gauge(name, doc, registry=registry).set(value)
        path = folder / TEXTFILE_NAME
        write_to_textfile(str(path), registry)
        return path
