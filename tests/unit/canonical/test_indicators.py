"""Indicators against TA-Lib and the `ta` package over a year of bars, after warm-up.

Our rows are computed over a 300-bar trailing window seeded at its start; the references run
over the full history. Wilder's smoothing forgets the seed by (13/14)^~270 ~ 1e-9, so the
float64 indicators agree to ~1e-8 relative; the builder's float32 outputs agree to float32
rounding (6e-8 relative), hence rtol=1e-6 on the float32 features, 1e-7 on float64.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib
from numpy.lib.stride_tricks import sliding_window_view
from ta.momentum import RSIIndicator
from ta.trend import ADXIndicator
from ta.volatility import AverageTrueRange

from canonical.builder import WINDOW_BARS, FeatureRows
from canonical.contract import FEATURE_INDEX
from canonical.indicators import adx_last, atr_last, rsi_last
from market_data.schema import Bars


def _feature(table: FeatureRows, name: str) -> np.ndarray:
    return table.values[:, FEATURE_INDEX[name]].astype(np.float64)


def _windows(series: np.ndarray) -> np.ndarray:
    return sliding_window_view(series, WINDOW_BARS)


def test_float64_indicators_match_talib_full_history(bars: Bars) -> None:
    h, lo, c = bars.high, bars.low, bars.close
    rows = np.arange(WINDOW_BARS - 1, len(bars))
    np.testing.assert_allclose(rsi_last(_windows(c), 9), talib.RSI(c, 9)[rows], rtol=1e-7)
    np.testing.assert_allclose(
        atr_last(_windows(h), _windows(lo), _windows(c), 14),
        talib.ATR(h, lo, c, 14)[rows],
        rtol=1e-7,
    )
    np.testing.assert_allclose(
        adx_last(_windows(h), _windows(lo), _windows(c), 14),
        talib.ADX(h, lo, c, 14)[rows],
        rtol=1e-7,
    )


def test_window_as_long_as_history_reproduces_talib_seed(bars: Bars) -> None:
    # With the window starting at bar 0, the seeding is TA-Lib's own: same numbers to ~ulp.
    h, lo, c = (x[:400][None, :] for x in (bars.high, bars.low, bars.close))
    assert abs(rsi_last(c, 9)[0] - talib.RSI(c[0], 9)[-1]) < 1e-12
    assert abs(atr_last(h, lo, c, 14)[0] - talib.ATR(h[0], lo[0], c[0], 14)[-1]) < 1e-12
    assert abs(adx_last(h, lo, c, 14)[0] - talib.ADX(h[0], lo[0], c[0], 14)[-1]) < 1e-12


def test_builder_features_match_talib_after_warmup(bars: Bars, table: FeatureRows) -> None:
    idx = table.bar_index
    h, lo, c = bars.high, bars.low, bars.close
    assert len(idx) > 15_000
    np.testing.assert_allclose(_feature(table, "rsi_9"), talib.RSI(c, 9)[idx], rtol=1e-6)
    np.testing.assert_allclose(
        _feature(table, "atr_pct"), (talib.ATR(h, lo, c, 14) / c)[idx], rtol=1e-6
    )
    np.testing.assert_allclose(_feature(table, "adx_14"), talib.ADX(h, lo, c, 14)[idx], rtol=1e-6)


def test_builder_features_match_ta_package(bars: Bars, table: FeatureRows) -> None:
    # `ta` seeds its RSI with the first value (exponential mean), so compare after 1,000 bars,
    # where both seeds are forgotten.
    later = table.bar_index >= 1000
    idx = table.bar_index[later]
    high, low, close = pd.Series(bars.high), pd.Series(bars.low), pd.Series(bars.close)
    rsi = RSIIndicator(close, window=9).rsi().to_numpy()
    atr = AverageTrueRange(high, low, close, window=14).average_true_range().to_numpy()
    adx = ADXIndicator(high, low, close, window=14).adx().to_numpy()
    np.testing.assert_allclose(_feature(table, "rsi_9")[later], rsi[idx], rtol=1e-6)
    np.testing.assert_allclose(
        _feature(table, "atr_pct")[later], atr[idx] / bars.close[idx], rtol=1e-6
    )
    np.testing.assert_allclose(_feature(table, "adx_14")[later], adx[idx], rtol=1e-6)


def test_rsi_hand_cases() -> None:
    rising = np.arange(1.0, 31.0)[None, :]
    assert rsi_last(rising, 9)[0] == 100.0  # no losses -> 100
    falling = rising[:, ::-1].copy()
    assert rsi_last(falling, 9)[0] == 0.0
    # Alternating +1/-1 after a +1 start: gains and losses seeded 5/9 and 4/9.
    zigzag = np.cumsum(np.r_[100.0, np.tile([1.0, -1.0], 5)[:-1]])[None, :]
    assert zigzag.shape == (1, 10)
    assert rsi_last(zigzag, 9)[0] == 100.0 * (5 / 9) / (5 / 9 + 4 / 9)


def test_atr_hand_case() -> None:
    # Constant range 2 around a flat close: every true range is 2, so ATR is 2.
    close = np.full((1, 40), 100.0)
    assert atr_last(close + 1.0, close - 1.0, close, 14)[0] == 2.0
