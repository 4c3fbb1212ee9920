"""One decision, and the loops that take one at each completed 5-minute bar.

What enters: an :class:`~client.ObservationClient`, a policy, a clock. What leaves: a pushed
position (``PushState``) or a hold, and a :class:`Decision` appended to the decision log (one
JSON object per line: a file, or with a folder one file a day, ``decisions-<YYYY-MM-DD>.jsonl``,
by default in the offline store's folder ``data/offline/agent_decisions``), and the agent's
metrics in a node-exporter textfile when a folder is given (``agent.metrics``).

Two ways to wait for a bar: :meth:`Agent.run` wakes 5 s after each 5-minute boundary;
:meth:`Agent.run_on_changes` follows ``WatchObservations`` and decides once per new bar (the
technical and macro views materialized for it), not on the state changes its own pushes cause.

When the agent holds (pushes nothing, so the stored position stays the truth): a view is
expired, or a view comes from the compute fallback and its values are older than
``max_fallback_age_s``; the call itself failing is a hold too. Each hold says why.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.decision import Decision
from agent.metrics import AgentMetrics
from agent.policy import LinearPolicy
from canonical.contract import FEATURE_NAMES
from client import ObservationClient, ObservationClientError, ObservationResult

logger = logging.getLogger(__name__)
BAR = timedelta(minutes=5)
_BAR_VIEWS = ("technical_features", "macro_features")


@dataclass(frozen=True)
class AgentSettings:
    """What the loop needs besides its client and policy."""

    symbol: str = "USDCOP"
    """The symbol traded."""
    max_fallback_age_s: float = 600.0
    """A view served by the fallback is acted on only while its values are this recent."""
    decision_log: Path | None = None
    """JSON lines of every decision: a ``.jsonl`` file, or a folder of daily files (None: log
    only)."""
    metrics_dir: Path | None = None
    """Folder of the agent's node-exporter textfile (None: no metrics)."""


def _why_hold(result: ObservationResult, now: datetime, max_fallback_age_s: float) -> str | None:
    for view in result.views:
        if view.freshness != "fresh":
            return f"{view.view} is {view.freshness} (event time {view.event_time.isoformat()})"
        age_s = (now - view.event_time).total_seconds()
        if view.source != "online_store" and age_s > max_fallback_age_s:
            return (
                f"{view.view} comes from the fallback ({view.fallback_reason}) and is "
                f"{age_s:.0f} s old (bound {max_fallback_age_s:.0f} s)"
            )
    return None


class Agent:
    """Observe -> act -> push for one symbol."""

    def __init__(
        self,
        client: ObservationClient,
        policy: LinearPolicy,
        settings: AgentSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_decision: Callable[[Decision], None] | None = None,
    ) -> None:
        self._on_decision = on_decision
        self._client = client
        self._policy = policy
        self._settings = settings
        self._clock = clock
        self._metrics = AgentMetrics()

    def step(self) -> Decision:
        """Take one decision, push it when the observation can be trusted, log it."""
        symbol = self._settings.symbol
        began = time.perf_counter()
        try:
            result = self._client.get(symbol)
        except ObservationClientError as exc:
            return self._log(
                Decision(self._clock().isoformat(), symbol, "hold", None, f"no observation: {exc}")
            )
        return self.decide(result, (time.perf_counter() - began) * 1000)

    def decide(self, result: ObservationResult, observe_ms: float | None = None) -> Decision:
        """Act on one observation (pushed to this agent or read by it), log the decision."""
        symbol = self._settings.symbol
        now = self._clock()
        values = dict(zip(FEATURE_NAMES, result.values.tolist(), strict=True))
        sources = {view.view: view.source for view in result.views}
        why = _why_hold(result, now, self._settings.max_fallback_age_s)
        if why is not None:
            return self._log(
                Decision(now.isoformat(), symbol, "hold", None, why, values, sources, observe_ms)
            )
        position = self._policy.act(result.values)
        began = time.perf_counter()
        try:
            applied = self._client.push_state(symbol, position, now)
        except ObservationClientError as exc:
            return self._log(
                Decision(
                    now.isoformat(),
                    symbol,
                    "hold",
                    position,
                    f"push failed: {exc}",
                    values,
                    sources,
                    observe_ms,
                )
            )
        push_ms = (time.perf_counter() - began) * 1000
        action, reason = ("push", "applied") if applied else ("stale", "store held a newer state")
        bar_close = max(v.event_time for v in result.views if v.view in _BAR_VIEWS)
        since_bar_ms = (datetime.now(UTC) - bar_close).total_seconds() * 1000
        return self._log(
            Decision(
                now.isoformat(),
                symbol,
                action,
                position,
                reason,
                values,
                sources,
                observe_ms,
                push_ms,
                since_bar_ms,
            )
        )

    def run(self, *, stop: Callable[[], bool] = lambda: False) -> None:
        """A decision at each completed 5-minute bar (a few seconds after its close, so the
        pipeline's materialization has landed), until ``stop()``."""
        while not stop():
            now = self._clock()
            epoch = datetime(1970, 1, 1, tzinfo=UTC)
            next_close = epoch + ((now - epoch) // BAR + 1) * BAR + timedelta(seconds=5)
            while not stop() and self._clock() < next_close:
                time.sleep(min(1.0, max(0.0, (next_close - self._clock()).total_seconds())))
            if not stop():
                self.step()

    def run_on_changes(self, *, stop: Callable[[], bool] = lambda: False) -> None:
        """A decision for each new bar ``WatchObservations`` shows, until ``stop()`` (checked
        at each change). A bar is new when the technical view's event time passed the last one
        decided on and the macro view has landed for it too (materialization writes the views
        one after the other: deciding on the first would decide twice per bar); the changes
        the agent's own pushes cause are not bars."""
        decided: datetime | None = None
        # closing(): a return ends the stream and its watchdog now, not when collected.
        with contextlib.closing(self._client.watch([self._settings.symbol])) as changes:
            for result in changes:
                times = {v.view: v.event_time for v in result.views}
                bar = times["technical_features"]
                if (decided is None or bar > decided) and times["macro_features"] >= bar:
                    decided = bar
                    self.decide(result)
                if stop():
                    return

    def _log(self, decision: Decision) -> Decision:
        logger.info(
            "%s %s %s: %s", decision.symbol, decision.action, decision.position, decision.reason
        )
        path = self._settings.decision_log
        if path is not None:
            if not path.suffix:  # a folder: one file a day
                path = path / f"decisions-{decision.decided_at[:10]}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as out:
                out.write(json.dumps(asdict(decision)) + "\n")
        if self._settings.metrics_dir is not None:
            self._metrics.record(decision)
            self._metrics.write(self._settings.metrics_dir)
        if self._on_decision is not None:
            self._on_decision(decision)
        return decision
