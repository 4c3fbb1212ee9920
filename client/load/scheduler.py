"""The three load modes, timed into HdrHistograms.

What enters: a call to measure (a zero-argument callable that raises on failure) and the
mode's parameters. What leaves: a :class:`Measurement` (histogram, counts, rates).

- sequential: one call in flight, timed from its own start.
- open loop: calls are started on a fixed schedule whatever the server does, and each is
  timed from its SCHEDULED start. A server stall therefore shows in the
  latency of every call scheduled during it, not only the one that hit it: no coordinated
  omission. The sender's own lateness is recorded too, so a saturated generator is visible.
- closed loop: several in-flight loops (each sends the next call when its previous one
  returns) for maximum throughput; its latencies hide queueing and are reported as such.

Warm-up samples are discarded in every mode.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from client.load.histograms import new_histogram, record_seconds

SyncCall = Callable[[], object]
AsyncCall = Callable[[], Awaitable[object]]

# asyncio's timers wake up with ~1 ms granularity (epoll takes whole milliseconds), and a
# generator that sleeps between sends wakes late: in one quick run, sender lag p99 was 2.8-5.8
# ms at 506 calls/s (sleeping between sends) against 0.06-1.2 ms at 1,012/s (never sleeping).
# The scheduler therefore sleeps only until SPIN_S before a send and yields (sleep(0)) for
# the rest: answers keep being processed and sends leave within tens of microseconds of their
# schedule. At rates above 1 / SPIN_S the generator never sleeps (it keeps one core busy).
SPIN_S = 0.005
MAX_ERROR_SAMPLES = 3


@dataclass
class Measurement:
    """The outcome of one measured run."""

    histogram: HdrHistogram
    """Latencies of the measured (post-warm-up) successful calls, µs."""
    calls: int = 0
    """Measured calls attempted (successes + errors)."""
    errors: int = 0
    """Measured calls that raised (including deadline and drain timeouts)."""
    elapsed_s: float = 0.0
    """Wall time of the measured window."""
    offered_rate: float | None = None
    """Open loop: the scheduled rate, calls/s."""
    send_lag: HdrHistogram | None = None
    """Open loop: how late each call actually left after its scheduled time, µs."""
    error_samples: list[str] = field(default_factory=list)

    @property
    def achieved_rate(self) -> float:
        """Successful measured calls per second of measured wall time."""
        ok = self.calls - self.errors
        return ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def note_error(self, error: BaseException) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(f"{type(error).__name__}: {error}"[:300])


def run_sequential_sync(
    call: SyncCall, calls: int, warmup_calls: int, max_s: float | None = None
) -> Measurement:
    """One call in flight, ``warmup_calls`` discarded, then ``calls`` timed (or fewer, when
    ``max_s`` of measured time runs out first: slow scenarios get fewer samples, fast ones
    many, in the same time)."""
    measurement = Measurement(new_histogram())
    for _ in range(warmup_calls):
        call()
    clock = time.perf_counter
    began = clock()
    stop_at = began + max_s if max_s is not None else float("inf")
    for _ in range(calls):
        start = clock()
        if start >= stop_at:
            break
        try:
            call()
        except Exception as error:
            measurement.calls += 1
            measurement.note_error(error)
            continue
        record_seconds(measurement.histogram, clock() - start)
        measurement.calls += 1
    measurement.elapsed_s = clock() - began
    return measurement


async def run_sequential_async(
    call: AsyncCall, calls: int, warmup_calls: int, max_s: float | None = None
) -> Measurement:
    """As :func:`run_sequential_sync`, for a coroutine call."""
    measurement = Measurement(new_histogram())
    for _ in range(warmup_calls):
        await call()
    clock = time.perf_counter
    began = clock()
    stop_at = began + max_s if max_s is not None else float("inf")
    for _ in range(calls):
        start = clock()
        if start >= stop_at:
            break
        try:
            await call()
        except Exception as error:
            measurement.calls += 1
            measurement.note_error(error)
            continue
        record_seconds(measurement.histogram, clock() - start)
        measurement.calls += 1
    measurement.elapsed_s = clock() - began
    return measurement


async def _sleep_until(when: float) -> None:
    clock = time.perf_counter
    remaining = when - clock()
    if remaining > SPIN_S:
        await asyncio.sleep(remaining - SPIN_S)
    while clock() < when:
        await asyncio.sleep(0)


async def run_open_loop(  # noqa: PLR0913 - a schedule's settings; options keyword-only
    call: AsyncCall,
    rate_per_s: float,
    duration_s: float,
    warmup_s: float,
    *,
    drain_timeout_s: float = 10.0,
    start_at: float | None = None,
) -> Measurement:
    """Start calls at ``rate_per_s`` for ``warmup_s + duration_s``; time each from its schedule.

    Calls scheduled in the first ``warmup_s`` are not recorded. Calls still running
    ``drain_timeout_s`` after the last scheduled start count as errors.
    """
    if rate_per_s <= 0:
        raise ValueError("rate_per_s must be positive")
    interval = 1.0 / rate_per_s
    warmup_calls = round(warmup_s * rate_per_s)
    measured_calls = max(1, round(duration_s * rate_per_s))
    total = warmup_calls + measured_calls
    measurement = Measurement(new_histogram(), offered_rate=rate_per_s, send_lag=new_histogram())
    send_lag = measurement.send_lag
    assert send_lag is not None
    histogram = measurement.histogram
    clock = time.perf_counter
    first = start_at if start_at is not None else clock() + 0.005
    pending: set[asyncio.Task[None]] = set()
    last_done = [first]

    async def one(scheduled: float, measured: bool) -> None:
        try:
            await call()
        except Exception as error:
            if measured:
                measurement.note_error(error)
            return
        finally:
            last_done[0] = max(last_done[0], clock())
        if measured:
            record_seconds(histogram, clock() - scheduled)

    for index in range(total):
        scheduled = first + index * interval
        if clock() < scheduled:
            await _sleep_until(scheduled)
        measured = index >= warmup_calls
        if measured:
            measurement.calls += 1
            record_seconds(send_lag, clock() - scheduled)
        task = asyncio.create_task(one(scheduled, measured))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        _, still_running = await asyncio.wait(set(pending), timeout=drain_timeout_s)
        for task in still_running:
            task.cancel()
            measurement.note_error(TimeoutError("call still running after the drain timeout"))
        if still_running:
            await asyncio.gather(*still_running, return_exceptions=True)
    measured_start = first + warmup_calls * interval
    # The measured window runs from the first measured schedule to the end of the schedule
    # or the last answer, whichever is later: a saturated server shows a lower achieved rate.
    measurement.elapsed_s = max(first + total * interval, last_done[0]) - measured_start
    return measurement


async def run_closed_loop(
    calls: Sequence[AsyncCall],
    duration_s: float,
    warmup_s: float,
    in_flight_per_call: int,
) -> Measurement:
    """``in_flight_per_call`` back-to-back loops per call (e.g. per channel) for the duration.

    Samples that complete during the first ``warmup_s`` are discarded.
    """
    measurement = Measurement(new_histogram())
    clock = time.perf_counter
    began = clock()
    measure_from = began + warmup_s
    end = measure_from + duration_s

    async def loop(call: AsyncCall) -> None:
        while True:
            start = clock()
            if start >= end:
                return
            try:
                await call()
            except Exception as error:
                if start >= measure_from:
                    measurement.calls += 1
                    measurement.note_error(error)
                continue
            done = clock()
            if start >= measure_from:
                measurement.calls += 1
                record_seconds(measurement.histogram, done - start)

    await asyncio.gather(*(loop(call) for call in calls for _ in range(in_flight_per_call)))
    measurement.elapsed_s = max(clock(), end) - measure_from
    return measurement
