"""PushState's event-time window and the read side's plausibility rules."""

from __future__ import annotations

import pytest
from usdcop.observation.v1 import observation_pb2 as pb

from online_store.reader import view_corruption
from server.errors import InvalidArgumentError
from server.validation import push_event_time_ns

NOW_NS = 1_765_562_400_000_000_000
S = 10**9
HOUR_NS = 3_600 * S
SKEW_NS = 300 * S


def window(seconds: int, nanos: int = 0) -> int:
    return push_event_time_ns(
        seconds, nanos, now_ns=NOW_NS, max_age_ns=HOUR_NS, max_skew_ns=SKEW_NS
    )


def test_inside_the_window_gives_ns() -> None:
    now_s = NOW_NS // S
    assert window(now_s, 5) == NOW_NS + 5
    assert window(now_s + 300) == NOW_NS + SKEW_NS  # the edges are inside
    assert window(now_s - 3_600) == NOW_NS - HOUR_NS


@pytest.mark.parametrize(
    ("seconds", "nanos", "message"),
    [
        (2**40, 0, "event_time.seconds must be a valid Timestamp"),
        (-(2**63), 0, "event_time.seconds must be a valid Timestamp"),
        (2**63 - 1, 0, "event_time.seconds must be a valid Timestamp"),
        (NOW_NS // S, -1, "event_time.nanos must be in [0, 999999999]"),
        (NOW_NS // S, 10**9, "event_time.nanos must be in [0, 999999999]"),
        (NOW_NS // S + 301, 0, "event_time is 301 s in the future; at most 300 s"),
        (7_258_118_400, 0, "in the future"),  # year 2200
        (NOW_NS // S - 3_601, 0, "event_time is 3601 s old; the state view's TTL is 3600 s"),
        (0, 0, "s old"),
    ],
)
def test_outside_the_window_is_invalid_argument(seconds: int, nanos: int, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        window(seconds, nanos)
    assert message in raised.value.public_message


TECH_OK = (0.001, -0.002, 0.003, 55.0, 0.004, 25.0)


def test_view_corruption_reasons() -> None:
    def reason(values: tuple[float, ...], ts: int) -> int:
        return view_corruption("technical_features", values, ts, now_ns=NOW_NS, max_skew_ns=SKEW_NS)

    assert reason(TECH_OK, NOW_NS) == pb.FALLBACK_REASON_NONE
    assert reason(TECH_OK, NOW_NS + SKEW_NS) == pb.FALLBACK_REASON_NONE
    assert reason(TECH_OK, NOW_NS + SKEW_NS + 1) == pb.FALLBACK_REASON_VIEW_FROM_FUTURE
    rsi_1e30 = (0.001, -0.002, 0.003, 1e30, 0.004, 25.0)
    assert reason(rsi_1e30, NOW_NS) == pb.FALLBACK_REASON_VIEW_OUT_OF_RANGE
    state = view_corruption("state_features", (1.5, 0.5), NOW_NS, now_ns=NOW_NS, max_skew_ns=0)
    assert state == pb.FALLBACK_REASON_VIEW_OUT_OF_RANGE
