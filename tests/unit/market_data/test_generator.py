"""The synthetic generator: deterministic, session calendar, OHLC-consistent, plausible levels."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from market_data.generator import (
    MACRO_WARMUP_WEEKDAYS,
    extend_macro,
    generate_bars,
    generate_macro,
    macro_start_for,
    next_bars,
)
from market_data.schema import BARS_COLUMNS, MACRO_COLUMNS, validate_bars, validate_macro
from market_data.session import is_session_bar, weekdays

END = date(2025, 12, 31)


@pytest.fixture(scope="module")
def year() -> pd.DataFrame:
    return generate_bars(end=END)


def test_same_seed_same_frame_other_seed_other_frame() -> None:
    a = generate_bars(("USDCOP", "USDMXN"), date(2025, 1, 6), date(2025, 2, 28), seed=5)
    b = generate_bars(("USDCOP", "USDMXN"), date(2025, 1, 6), date(2025, 2, 28), seed=5)
    pd.testing.assert_frame_equal(a, b)
    c = generate_bars(("USDCOP", "USDMXN"), date(2025, 1, 6), date(2025, 2, 28), seed=6)
    assert not np.allclose(a["close"], c["close"])
    m1, m2 = generate_macro(date(2025, 1, 1), END, seed=5), generate_macro(date(2025, 1, 1), END, 5)
    pd.testing.assert_frame_equal(m1, m2)
    assert not generate_macro(date(2025, 1, 1), END, seed=6).equals(m1)


def test_default_span_is_a_year_of_sessions(year: pd.DataFrame) -> None:
    assert list(year.columns) == list(BARS_COLUMNS)
    days = weekdays(END - timedelta(days=364), END)
    assert len(year) == 60 * len(days) > 15_000
    times = year["time"]
    assert str(times.dtype) == "datetime64[ns, UTC]"
    assert all(is_session_bar(t.to_pydatetime()) for t in times)
    per_day = times.dt.date.value_counts()
    assert set(per_day.index) == set(days)
    assert (per_day == 60).all()
    pd.testing.assert_frame_equal(validate_bars(year), year)  # already valid and ordered


def test_ohlc_consistent_and_open_is_previous_close_inside_a_session(year: pd.DataFrame) -> None:
    o, h, lo, c = (year[k].to_numpy() for k in ("open", "high", "low", "close"))
    assert np.all(lo <= np.minimum(o, c)) and np.all(h >= np.maximum(o, c))
    assert np.mean(h > np.maximum(o, c)) > 0.5  # real wicks, not degenerate bars
    same_session = np.diff(year["time"].to_numpy()) == np.timedelta64(5, "m")
    assert np.array_equal(o[1:][same_session], c[:-1][same_session])
    gaps = o[1:][~same_session] / c[:-1][~same_session] - 1
    assert np.abs(gaps).max() < 0.01 and np.count_nonzero(gaps) > 0.5 * len(gaps)
    assert np.array_equal(np.round(c, 2), c)  # quoted with 2 decimals


@pytest.mark.parametrize("seed", [0, 1, 2, 7, 42])
def test_usdcop_level_and_volatility_are_plausible(seed: int) -> None:
    bars = generate_bars(end=END, seed=seed)
    close = bars["close"].to_numpy()
    assert 3800 <= bars["low"].min() and bars["high"].max() <= 4500
    bar_bp = np.std(np.diff(np.log(close))) * 1e4
    assert 2 < bar_bp < 10
    assert close.max() / close.min() > 1.02  # it does move


def test_other_symbols_have_their_own_path_and_level() -> None:
    bars = generate_bars(("USDCOP", "USDMXN", "ABC"), date(2025, 3, 3), date(2025, 3, 7))
    closes = {s: g["close"].to_numpy() for s, g in bars.groupby("symbol")}
    assert 16 < closes["USDMXN"].mean() < 21
    assert len(closes["ABC"]) == len(closes["USDCOP"]) == 300
    returns = {s: np.diff(np.log(c)) for s, c in closes.items()}
    assert abs(np.corrcoef(returns["USDCOP"], returns["USDMXN"])[0, 1]) < 0.3


def test_macro_rows_and_levels() -> None:
    macro = generate_macro(end=END)
    assert list(macro.columns) == list(MACRO_COLUMNS)
    days = [d.date() for d in macro["date"]]
    assert days == weekdays(days[0], END)
    bars_start = END - timedelta(days=364)
    assert days[0] == macro_start_for(bars_start)
    assert sum(d < bars_start for d in days) == MACRO_WARMUP_WEEKDAYS
    bounds = {
        "dxy": (100, 110),
        "vix": (11, 40),
        "embi": (250, 450),
        "brent": (60, 95),
        "col_rate": (9, 13),
        "us_rate": (4, 5.5),
        "usdmxn": (16.5, 20.5),
    }
    for name, (low, high) in bounds.items():
        assert low <= macro[name].min() and macro[name].max() <= high, name
        assert macro[name].nunique() > 1, name
    assert macro["vix"].max() > 1.4 * macro["vix"].median()  # spikes
    assert macro["col_rate"].diff().abs().max() <= 0.25  # slow, stepwise
    pd.testing.assert_frame_equal(validate_macro(macro), macro)


def test_next_bars_continue_the_path_deterministically(year: pd.DataFrame) -> None:
    last = year.iloc[-1]
    after = last["time"].to_pydatetime()
    # The live mode is always open: times outside the session are generated too.
    opens = [after + timedelta(minutes=5 * k) for k in range(1, 80)]
    new = next_bars(year, opens, seed=1)
    assert list(new.columns) == list(BARS_COLUMNS)
    assert new["time"].tolist() == [pd.Timestamp(t) for t in opens]
    assert new["open"].iloc[0] == last["close"]  # 5 minutes later: no gap
    assert np.array_equal(new["open"].to_numpy()[1:], new["close"].to_numpy()[:-1])
    validate_bars(pd.concat([year, new], ignore_index=True))
    pd.testing.assert_frame_equal(new, next_bars(year, opens, seed=1))
    assert not new.equals(next_bars(year, opens, seed=2))
    with pytest.raises(ValueError, match="not after"):
        next_bars(year, [after], seed=1)
    with pytest.raises(ValueError, match="tz-aware"):
        next_bars(year, [datetime(2026, 1, 1)], seed=1)


def test_next_bars_per_symbol() -> None:
    bars = generate_bars(("USDCOP", "USDMXN"), date(2025, 3, 3), date(2025, 3, 3))
    new = next_bars(bars, [datetime(2025, 3, 3, 18, 0, tzinfo=UTC)], seed=0)
    assert new["symbol"].tolist() == ["USDCOP", "USDMXN"]
    lasts = bars.groupby("symbol")["close"].last()
    assert new.set_index("symbol")["open"].to_dict() == lasts.to_dict()


def test_extend_macro_keeps_rows_and_appends_weekdays() -> None:
    macro = generate_macro(date(2025, 1, 1), date(2025, 3, 31))
    longer = extend_macro(macro, date(2025, 4, 8), seed=3)
    pd.testing.assert_frame_equal(longer.iloc[: len(macro)], macro)
    added = [d.date() for d in longer["date"].iloc[len(macro) :]]
    assert added == weekdays(date(2025, 4, 1), date(2025, 4, 8))
    validate_macro(longer)
    pd.testing.assert_frame_equal(longer, extend_macro(macro, date(2025, 4, 8), seed=3))
    pd.testing.assert_frame_equal(extend_macro(macro, date(2025, 3, 31), seed=3), macro)
