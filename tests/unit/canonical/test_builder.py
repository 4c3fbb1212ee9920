"""The canonical builder: macro point-in-time join, z-scores, state features, warm-up, parity."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from canonical.builder import (
    MACRO_Z_DAYS,
    WINDOW_BARS,
    CanonicalFeatureBuilder,
    FeatureRows,
    InsufficientHistory,
    position_rule,
    time_normalized,
)
from canonical.contract import FEATURE_INDEX, MACRO, N_FEATURES, TECHNICAL, view_slice
from market_data.schema import Bars, MacroDaily
from market_data.session import BAR_NS

DAY_NS = 86_400_000_000_000


def _ns(year: int, month: int, day: int, hour: int, minute: int) -> int:
    moment = datetime(year, month, day, hour, minute, tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000


def _head(bars: Bars, count: int) -> Bars:
    return Bars(
        symbol=bars.symbol,
        open_time_ns=bars.open_time_ns[:count],
        open=bars.open[:count],
        high=bars.high[:count],
        low=bars.low[:count],
        close=bars.close[:count],
    )


def _bar_days(bars: Bars, rows: FeatureRows) -> np.ndarray:
    return (bars.open_time_ns[rows.bar_index] // DAY_NS).astype("datetime64[D]")


def test_rows_are_finite_warm_up_dropped_and_event_time_is_close(
    bars: Bars, table: FeatureRows, builder: CanonicalFeatureBuilder
) -> None:
    assert builder.min_bars == WINDOW_BARS == 300
    assert table.values.dtype == np.float32
    assert table.values.shape == (len(bars) - (WINDOW_BARS - 1), N_FEATURES)
    assert np.isfinite(table.values).all()
    assert table.bar_index[0] == WINDOW_BARS - 1
    np.testing.assert_array_equal(table.bar_index, np.arange(WINDOW_BARS - 1, len(bars)))
    np.testing.assert_array_equal(
        table.event_time_ns, bars.open_time_ns[table.bar_index] + 5 * 60 * 1_000_000_000
    )
    assert np.all(np.diff(table.event_time_ns) > 0)


def test_log_returns_hand_checked(bars: Bars, table: FeatureRows) -> None:
    row = 1234
    i = table.bar_index[row]
    c = bars.close
    for name, lag in (("log_ret_5m", 1), ("log_ret_1h", 12), ("log_ret_4h", 48)):
        assert table.values[row, FEATURE_INDEX[name]] == np.float32(np.log(c[i] / c[i - lag]))


def test_rows_without_sixty_macro_days_are_not_emitted(
    bars: Bars, macro: MacroDaily, builder: CanonicalFeatureBuilder
) -> None:
    # Macro that starts on the bars' 10th day: a bar needs 60 rows dated before its day.
    bar_days = np.unique((bars.open_time_ns // DAY_NS).astype("datetime64[D]"))
    start = int(np.searchsorted(macro.day, bar_days[10]))
    short = MacroDaily(**{f: getattr(macro, f)[start:] for f in macro.__dataclass_fields__})
    rows = builder.batch(bars, short)
    first_day = _bar_days(bars, rows)[0]
    assert np.count_nonzero(short.day < first_day) == MACRO_Z_DAYS
    previous_day = bar_days[np.searchsorted(bar_days, first_day) - 1]
    assert np.count_nonzero(short.day < previous_day) == MACRO_Z_DAYS - 1
    assert np.isfinite(rows.values).all()
    with pytest.raises(InsufficientHistory):
        first_rows = bars.open_time_ns // DAY_NS == previous_day.astype(np.int64)
        builder.latest(_head(bars, int(np.flatnonzero(first_rows)[-1]) + 1), short)


def test_macro_join_has_no_look_ahead(
    bars: Bars, macro: MacroDaily, table: FeatureRows, builder: CanonicalFeatureBuilder
) -> None:
    days = _bar_days(bars, table)
    unique_days = np.unique(days)
    day_d, next_day = unique_days[150], unique_days[151]
    row_d = int(np.flatnonzero(macro.day == day_d)[0])
    bumped = {name: getattr(macro, name).copy() for name in ("dxy", "vix", "embi", "brent")}
    bumped.update({name: getattr(macro, name).copy() for name in ("col_rate", "usdmxn")})
    for values in bumped.values():
        values[row_d] *= 1.05
    changed = builder.batch(bars, replace(macro, **bumped))

    on_d, on_next = days == day_d, days == next_day
    assert on_d.sum() == 60 and on_next.sum() == 60
    # Day D's own print is unknown during day D: its bars are bit-identical.
    assert np.array_equal(changed.values[on_d].view(np.uint32), table.values[on_d].view(np.uint32))
    # Every bar of the next trading day sees it, in every macro feature.
    macro_cols = view_slice(MACRO)
    assert np.all(changed.values[on_next, macro_cols] != table.values[on_next, macro_cols])
    # Technical features never depend on macro.
    tech = view_slice(TECHNICAL)
    assert np.array_equal(changed.values[:, tech], table.values[:, tech])


def test_bar_uses_previous_weekday_print(bars: Bars, macro: MacroDaily, table: FeatureRows) -> None:
    days = _bar_days(bars, table)
    monday = next(d for d in np.unique(days) if d.astype(datetime).weekday() == 0)
    row = int(np.flatnonzero(days == monday)[0])
    friday = int(np.flatnonzero(macro.day == monday - np.timedelta64(3, "D"))[0])
    values = table.values[row]
    assert values[FEATURE_INDEX["rate_spread"]] == np.float32(
        macro.col_rate[friday] - macro.us_rate[friday]
    )
    for name, series in (
        ("dxy_change_1d", macro.dxy),
        ("brent_change_1d", macro.brent),
        ("usdmxn_change_1d", macro.usdmxn),
    ):
        assert values[FEATURE_INDEX[name]] == np.float32(series[friday] / series[friday - 1] - 1)


def test_zscore_uses_exactly_sixty_rows_ending_at_the_row_population_std(
    bars: Bars, macro: MacroDaily, table: FeatureRows
) -> None:
    row = 5000
    day = _bar_days(bars, table)[row]
    r = int(np.searchsorted(macro.day, day)) - 1
    assert macro.day[r] < day <= macro.day[r + 1]
    for name, series in (("dxy_z", macro.dxy), ("vix_z", macro.vix), ("embi_z", macro.embi)):
        got = float(table.values[row, FEATURE_INDEX[name]])
        window = series[r - 59 : r + 1]
        assert len(window) == 60
        expected = (series[r] - window.mean()) / window.std(ddof=0)
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-6)
        for other in (series[r - 58 : r + 1], series[r - 60 : r + 1]):  # 59 or 61 values
            assert got != pytest.approx((series[r] - other.mean()) / other.std(), rel=1e-4)
        sample = (series[r] - window.mean()) / window.std(ddof=1)
        assert got != pytest.approx(sample, rel=1e-4)


def test_time_normalized_at_session_edges() -> None:
    times = np.array(
        [
            _ns(2025, 3, 3, 13, 5),  # the 13:00 bar's close
            _ns(2025, 3, 3, 18, 0),  # the 17:55 bar's close
            _ns(2025, 3, 3, 15, 30),
            _ns(2025, 3, 3, 13, 0),
            _ns(2025, 3, 3, 12, 0),  # before the session
            _ns(2025, 3, 3, 21, 0),  # after it
            _ns(2025, 3, 4, 0, 0),  # the 23:55 bar of the live mode
        ],
        dtype=np.int64,
    )
    got = time_normalized(times)
    assert got.dtype == np.float32
    expected = np.array([5 / 300, 1.0, 150 / 300, 0.0, 0.0, 1.0, 0.0], dtype=np.float32)
    assert np.array_equal(got, expected)


def test_state_features_of_the_table(bars: Bars, table: FeatureRows) -> None:
    tn = table.values[:, FEATURE_INDEX["time_normalized"]]
    minute = (bars.open_time_ns[table.bar_index] % DAY_NS) // 60_000_000_000
    assert np.all(tn[minute == 13 * 60] == np.float32(5 / 300))
    assert np.all(tn[minute == 17 * 60 + 55] == np.float32(1.0))
    position = table.values[:, FEATURE_INDEX["position"]]
    ret_1h = table.values[:, FEATURE_INDEX["log_ret_1h"]]
    assert set(np.unique(position)) <= {-1.0, 0.0, 1.0}
    assert np.array_equal(position, np.sign(ret_1h))
    assert np.array_equal(position_rule(np.array([0.002, -0.1, 0.0])), [1.0, -1.0, 0.0])


def test_latest_equals_batch_bit_for_bit_on_200_random_bars(
    bars: Bars, macro: MacroDaily, table: FeatureRows, builder: CanonicalFeatureBuilder
) -> None:
    rng = np.random.default_rng(2024)
    picks = rng.choice(len(table), size=200, replace=False)
    for row in picks:
        i = int(table.bar_index[row])
        latest = builder.latest(_head(bars, i + 1), macro)
        assert latest.bar_index.tolist() == [i]
        assert latest.event_time_ns.tolist() == [table.event_time_ns[row]]
        assert latest.values.shape == (1, N_FEATURES)
        assert np.array_equal(latest.values[0].view(np.uint32), table.values[row].view(np.uint32))


def test_latest_reads_only_its_window(
    bars: Bars, macro: MacroDaily, builder: CanonicalFeatureBuilder, table: FeatureRows
) -> None:
    # Garbage before the window must not matter.
    poisoned = Bars(
        symbol=bars.symbol,
        open_time_ns=bars.open_time_ns,
        open=np.r_[np.full(len(bars) - WINDOW_BARS, np.nan), bars.open[-WINDOW_BARS:]],
        high=np.r_[np.full(len(bars) - WINDOW_BARS, np.nan), bars.high[-WINDOW_BARS:]],
        low=np.r_[np.full(len(bars) - WINDOW_BARS, np.nan), bars.low[-WINDOW_BARS:]],
        close=np.r_[np.full(len(bars) - WINDOW_BARS, np.nan), bars.close[-WINDOW_BARS:]],
    )
    latest = builder.latest(poisoned, macro)
    assert np.array_equal(latest.values[0].view(np.uint32), table.values[-1].view(np.uint32))


def test_latest_position_override_and_errors(
    bars: Bars, macro: MacroDaily, builder: CanonicalFeatureBuilder, table: FeatureRows
) -> None:
    row = builder.latest(bars, macro, position=-0.5)
    assert row.values[0, FEATURE_INDEX["position"]] == np.float32(-0.5)
    others = [i for i in range(N_FEATURES) if i != FEATURE_INDEX["position"]]
    assert np.array_equal(row.values[0, others], table.values[-1, others])
    with pytest.raises(ValueError, match="position"):
        builder.latest(bars, macro, position=1.5)
    with pytest.raises(InsufficientHistory, match="299 bars"):
        builder.latest(_head(bars, WINDOW_BARS - 1), macro)
    assert len(builder.batch(_head(bars, WINDOW_BARS - 1), macro)) == 0
    with pytest.raises(ValueError, match="window_bars"):
        CanonicalFeatureBuilder(window_bars=10)


def test_non_finite_rows_are_dropped(macro: MacroDaily, builder: CanonicalFeatureBuilder) -> None:
    # A price path that touches zero gives an infinite log return: that row is not emitted.
    n = 400
    start = _ns(2025, 11, 3, 13, 0)
    close = 4000.0 + np.sin(np.arange(n))
    close[350] = 0.0
    bars = Bars(
        symbol="X",
        open_time_ns=start + np.arange(n, dtype=np.int64) * BAR_NS,
        open=close,
        high=close + 1.0,
        low=close,
        close=close,
    )
    rows = builder.batch(bars, macro)  # no warning escapes (warnings are errors here)
    with pytest.raises(InsufficientHistory):
        builder.latest(_head(bars, 351), macro)
    assert np.isfinite(rows.values).all()
    assert 350 not in rows.bar_index and 351 not in rows.bar_index
    assert 349 in rows.bar_index
