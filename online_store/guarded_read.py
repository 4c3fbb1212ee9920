"""The one guarded read of the online store that every observation RPC goes through.

What enters: read plans and a time bound. What leaves: per plan, the store's read, or None when
the store failed, timed out or the circuit breaker kept the call away (the caller serves the
fallback for it). Around the read, in one place for GetObservation, GetObservations and
WatchObservations alike: the breaker (allow, then success, failure or release), the Redis read
metrics (latency, failures by kind), the breaker-transition log line and metric, and the
callbacks that tell the health judge the store answered or timed out.

A timeout is not counted against Redis: the time also includes waiting for this process's own
busy event loop, and Redis is judged apart from the request path (``online_store/health.py``).
A timeout caused by the caller's own deadline (``deadline_bound``) says nothing about Redis and
is neither counted nor reported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from online_store.breaker import BreakerState, CircuitBreaker
from online_store.errors import StoreError, StoreTimeoutError
from online_store.read_plan import ReadPlan
from online_store.reader import StoreRead, StoreReader

logger = logging.getLogger("server.service")


class ReadMetrics(Protocol):
    """What the guarded read reports (the server's metrics implement it)."""

    def redis_answered(self, elapsed_ns: int) -> None: ...

    def redis_failed(self, kind: str) -> None:
        """``kind``: ``error`` or ``timeout``."""

    def breaker_changed(self, state: BreakerState) -> None: ...


class GuardedRead:
    """Breaker, metrics and log around :class:`StoreReader` (see the module docstring)."""

    def __init__(
        self,
        reader: StoreReader,
        breaker: CircuitBreaker,
        *,
        metrics: ReadMetrics | None = None,
        on_answered: Callable[[], None] = lambda: None,
        on_timeout: Callable[[], None] = lambda: None,
    ) -> None:
        self._reader = reader
        self._breaker = breaker
        self._metrics = metrics
        self._on_answered = on_answered
        self._on_timeout = on_timeout

    async def read(
        self, plans: Sequence[ReadPlan], timeout_s: float, *, deadline_bound: bool = False
    ) -> list[StoreRead | None]:
        """One read per plan (one round trip for all of them), Nones when the store could not
        be used; the store's exceptions never leave this method, cancellation does."""
        if timeout_s <= 0 or not self._breaker.allow():
            return [None] * len(plans)
        was = self._breaker.state
        started_ns = time.perf_counter_ns()
        try:
            if len(plans) == 1:
                reads: list[StoreRead | None] = [await self._reader.read(plans[0], timeout_s)]
            else:
                reads = list(await self._reader.read_many(list(plans), timeout_s))
        except StoreTimeoutError:
            self._breaker.release()
            if not deadline_bound:
                if self._metrics is not None:
                    self._metrics.redis_failed("timeout")
                self._on_timeout()
            return [None] * len(plans)
        except StoreError:
            self._breaker.record_failure()
            if self._metrics is not None:
                self._metrics.redis_failed("error")
            self._log_breaker_change(was)
            return [None] * len(plans)
        except BaseException:
            self._breaker.release()
            raise
        if self._metrics is not None:
            self._metrics.redis_answered(time.perf_counter_ns() - started_ns)
        self._breaker.record_success()
        self._log_breaker_change(was)
        self._on_answered()
        return reads

    def _log_breaker_change(self, was: BreakerState) -> None:
        now = self._breaker.state
        if now is was:
            return
        if self._metrics is not None:
            self._metrics.breaker_changed(now)
        fields = {"event": "breaker_transition", "from_state": was.value, "to_state": now.value}
        if was is BreakerState.CLOSED:
            logger.warning(
                "online store failing: circuit breaker open, serving the fallback", extra=fields
            )
        elif now is BreakerState.CLOSED:
            logger.info("online store answering again: circuit breaker closed", extra=fields)
        else:  # a failed probe: still down, nothing new to say at INFO
            logger.debug(
                "online store circuit breaker %s -> %s", was.value, now.value, extra=fields
            )
