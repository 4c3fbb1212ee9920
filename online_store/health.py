"""Judges Redis apart from the request path when a read misses its time bound.

What enters: each request-path read that timed out (``suspect()``). What leaves: a verdict for
the circuit breaker: ``trip()`` when Redis does not answer a PING within ``confirm_timeout_s``,
nothing when it does.

Why: a read's bound (``redis_timeout_ms``, 5 ms by default) is measured on the event loop, so
it also counts the time the reply waits for a busy loop (thousands of calls in flight, a GC
pause). Load alone must not open the breaker; only a Redis that is really slow or gone may. The
request that timed out still gets the fallback at once; one background PING at a time, with a
generous bound, decides. Errors (connection refused, reset) need no confirmation: the request
path reports them to the breaker directly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from core.tasks import stop_tasks
from online_store.breaker import BreakerState, CircuitBreaker

logger = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 1.0
"""Bound on the confirmation PING: far above any healthy Redis, and above the event-loop
delays seen under overload (the breaker then opens at most this long after Redis stalls)."""


class TimeoutJudge:
    """One confirmation PING in flight at most; a failed one trips the breaker."""

    def __init__(
        self,
        ping: Callable[[float], Awaitable[bool]],
        breaker: CircuitBreaker,
        confirm_timeout_s: float,
    ) -> None:
        self._ping = ping
        self._breaker = breaker
        self._confirm_timeout_s = confirm_timeout_s
        self._task: asyncio.Task[None] | None = None

    def suspect(self) -> None:
        """A read timed out: confirm with a PING unless one is already in flight."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._confirm())

    async def _confirm(self) -> None:
        if await self._ping(self._confirm_timeout_s):
            return
        was = self._breaker.state
        self._breaker.trip()
        if was is BreakerState.CLOSED:
            logger.warning(
                "online store did not answer a PING within %g s: circuit breaker open, "
                "serving the fallback",
                self._confirm_timeout_s,
            )

    async def aclose(self) -> None:
        await stop_tasks(self._task)
