"""The state rows' positions derived from the agent's pushes (point in time, per symbol)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from canonical.offline_tables import apply_state_events, events_frame
from canonical.state_events import StateEvent, stream_key

T0 = pd.Timestamp("2026-01-05 13:05", tz="UTC")


def _state(symbol: str, minutes: list[int], rule: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": pd.Series([symbol] * len(minutes), dtype=object),
            "event_timestamp": [T0 + pd.Timedelta(minutes=m) for m in minutes],
            "position": np.full(len(minutes), rule, dtype=np.float32),
            "time_normalized": np.linspace(0, 1, len(minutes), dtype=np.float32),
            "synthetic": True,
        }
    )


def _event(symbol: str, minute: float, position: float) -> StateEvent:
    moment = T0 + pd.Timedelta(minutes=minute)
    return StateEvent(symbol, moment.value, position, 0.5)


def test_each_row_holds_the_latest_event_at_or_before_it_of_its_own_symbol() -> None:
    state = pd.concat(
        [_state("USDCOP", [0, 5, 10, 15, 20], 1.0), _state("USDMXN", [0, 5, 10], -1.0)],
        ignore_index=True,
    )
    events = events_frame(
        [_event("USDCOP", 5, 0.5), _event("USDCOP", 12.5, -0.25), _event("USDMXN", 7, 0.0)]
    )
    out = apply_state_events(state, events)
    assert out["position"].tolist() == [1.0, 0.5, 0.5, -0.25, -0.25, -1.0, -1.0, 0.0]
    assert out["synthetic"].tolist() == [True, False, False, False, False, True, True, False]
    assert out["position"].dtype == np.float32
    pd.testing.assert_series_equal(out["time_normalized"], state["time_normalized"])
    assert state["position"].eq(1.0).sum() == 5  # the input is not modified


def test_rows_keep_their_order_and_no_events_change_nothing() -> None:
    state = _state("USDCOP", [20, 0, 10], 1.0)
    out = apply_state_events(state, events_frame([_event("USDCOP", 10, 0.5)]))
    assert out["position"].tolist() == [0.5, 1.0, 0.5]
    pd.testing.assert_frame_equal(apply_state_events(state, events_frame([])), state)


def test_a_stream_entry_round_trips_a_float32_exactly_and_bad_ones_are_refused() -> None:
    event = StateEvent("USDCOP", 1_767_000_000_123_456_789, float(np.float32(0.1)), 0.75)
    assert StateEvent.from_fields(event.fields()) == event
    assert stream_key("usdcop_trading") == b"usdcop_trading:state_events"
    for bad in ({**event.fields(), b"position": b"1.5"}, {b"symbol": b"USDCOP"}):
        with pytest.raises((KeyError, ValueError)):
            StateEvent.from_fields(bad)
