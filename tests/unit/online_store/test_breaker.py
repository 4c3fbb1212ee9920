"""CircuitBreaker state machine against an injectable clock."""

from __future__ import annotations

from core.clock import ManualClock
from online_store.breaker import BreakerState, CircuitBreaker


def test_opens_after_threshold_then_probes_and_closes() -> None:
    clock = ManualClock(wall_ns=0)
    breaker = CircuitBreaker(failure_threshold=3, open_ms=1000.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.advance(0.999)
    assert not breaker.allow()
    clock.advance(0.001)
    assert breaker.allow()  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # only one probe at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_failed_probe_reopens_for_a_full_period() -> None:
    clock = ManualClock(wall_ns=0)
    breaker = CircuitBreaker(failure_threshold=1, open_ms=500.0, clock=clock)
    assert breaker.allow()
    breaker.record_failure()
    clock.advance(0.5)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.4)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, open_ms=1000.0, clock=ManualClock(wall_ns=0))
    breaker.allow()
    breaker.record_failure()
    breaker.allow()
    breaker.record_success()
    breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_released_probe_lets_the_next_call_probe() -> None:
    clock = ManualClock(wall_ns=0)
    breaker = CircuitBreaker(failure_threshold=1, open_ms=100.0, clock=clock)
    breaker.allow()
    breaker.record_failure()
    clock.advance(0.1)
    assert breaker.allow()
    breaker.release()  # e.g. the probing caller was cancelled
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
