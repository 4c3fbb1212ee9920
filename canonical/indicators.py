"""Wilder indicators (RSI, ATR, ADX) over fixed windows, in pure numpy, TA-Lib conventions.

What enters: 2-D price windows of shape ``(rows, window)``; each row is one bar's trailing
window, oldest bar in column 0, the bar itself in the last column.
What leaves: one float64 value per row: the indicator at the window's last bar, as TA-Lib
would compute it on that window alone (its seeding happens at column 0).

Why windows: a row's value depends only on its own window, and every step runs element-wise
over the rows with the same sequence of IEEE operations (no reductions whose order could
depend on the number of rows). A batch of many windows and a single window therefore give
bit-identical values for the same bars. Wilder's smoothing forgets its seed geometrically,
so over a 300-bar window the values match TA-Lib over the full history to ~1e-9 relative.

Conventions (TA-Lib's ``RSI``, ``ATR``, ``ADX`` with no unstable period):

- RSI: averages of the first ``period`` gains/losses seeded by their simple mean, then
  ``avg = (avg * (period - 1) + x) / period``. No losses in the average -> 100 (a flat
  window also gives 100; TA-Lib gives 0 there).
- ATR: true range ``max(H - L, |H - C_prev|, |L - C_prev|)`` from the window's second bar;
  seeded with the simple mean of the first ``period`` true ranges, then Wilder's average.
- ADX: +DM/-DM/TR summed over the first ``period - 1`` bars, then ``s = s - s/period + x``;
  ADX seeded with the mean of the first ``period`` DX values, then Wilder's average.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_TA_ZERO = 1e-14
"""TA-Lib's TA_IS_ZERO threshold."""


def _by_column(window: FloatArray) -> FloatArray:
    """``(rows, window)`` -> contiguous ``(window, rows)`` so each step reads one block."""
    if window.ndim != 2:
        raise ValueError(f"expected a 2-D (rows, window) array, got shape {window.shape}")
    return np.ascontiguousarray(window.T, dtype=np.float64)


def min_window(period: int) -> int:
    """Smallest window (in bars) on which ADX of ``period`` (the longest warm-up) is defined."""
    return 2 * period


def true_range(high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    """True range of columns 1.. of ``(window, rows)`` arrays; shape ``(window - 1, rows)``."""
    prev_close = close[:-1]
    hi, lo = high[1:], low[1:]
    return np.maximum(np.maximum(hi - lo, np.abs(hi - prev_close)), np.abs(lo - prev_close))


def rsi_last(close_window: FloatArray, period: int) -> FloatArray:
    """Wilder RSI at the last bar of each ``(rows, window)`` close window."""
    keep, div = float(period - 1), float(period)
    close = _by_column(close_window)
    steps = close.shape[0] - 1
    if steps < period:
        raise ValueError(f"RSI({period}) needs a window of at least {period + 1} bars")
    diff = close[1:] - close[:-1]
    moves = np.stack((np.where(diff > 0.0, diff, 0.0), np.where(diff < 0.0, -diff, 0.0)), axis=1)
    avg = np.zeros(moves.shape[1:])
    for move in moves[:period]:
        avg = avg + move
    avg = avg / period
    # Out-of-place float ops: on one-row windows they cost less than in-place ufunc calls.
    for move in moves[period:]:
        avg = avg * keep
        avg = avg + move
        avg = avg / div
    gain, loss = avg[0], avg[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = 100.0 * (gain / (gain + loss))
    return np.where(loss == 0.0, 100.0, rsi)


def atr_last(
    high_window: FloatArray, low_window: FloatArray, close_window: FloatArray, period: int
) -> FloatArray:
    """Wilder ATR at the last bar of each ``(rows, window)`` window (price units)."""
    keep, div = float(period - 1), float(period)
    tr = true_range(_by_column(high_window), _by_column(low_window), _by_column(close_window))
    steps = tr.shape[0]
    if steps < period:
        raise ValueError(f"ATR({period}) needs a window of at least {period + 1} bars")
    atr = np.zeros(tr.shape[1])
    for step in tr[:period]:
        atr = atr + step
    atr = atr / period
    for step in tr[period:]:
        atr = atr * keep
        atr = atr + step
        atr = atr / div
    return atr


def adx_last(
    high_window: FloatArray, low_window: FloatArray, close_window: FloatArray, period: int
) -> FloatArray:
    """Wilder ADX at the last bar of each ``(rows, window)`` window."""
    keep, div = float(period - 1), float(period)
    high, low, close = _by_column(high_window), _by_column(low_window), _by_column(close_window)
    steps = high.shape[0] - 1
    if steps + 1 < min_window(period):
        raise ValueError(f"ADX({period}) needs a window of at least {min_window(period)} bars")
    up = high[1:] - high[:-1]
    down = low[:-1] - low[1:]
    plus_dm = np.where((up > 0.0) & (up > down), up, 0.0)
    minus_dm = np.where((down > 0.0) & (up < down), down, 0.0)
    # Adding 0.0 where TA-Lib skips the addition leaves the sum bit-identical.
    inputs = np.stack((plus_dm, minus_dm, true_range(high, low, close)), axis=1)

    smooth = np.zeros(inputs.shape[1:])
    for step in inputs[: period - 1]:
        smooth = smooth + step
    history = []
    for step in inputs[period - 1 :]:
        smooth = smooth - smooth / div
        smooth = smooth + step
        history.append(smooth)
    smoothed = np.stack(history)

    plus_s, minus_s, tr_s = smoothed[:, 0], smoothed[:, 1], smoothed[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        minus_di = 100.0 * (minus_s / tr_s)
        plus_di = 100.0 * (plus_s / tr_s)
        di_sum = minus_di + plus_di
        dx = 100.0 * (np.abs(minus_di - plus_di) / di_sum)
    defined = ~((-_TA_ZERO < tr_s) & (tr_s < _TA_ZERO)) & ~(
        (-_TA_ZERO < di_sum) & (di_sum < _TA_ZERO)
    )

    dx_sum = np.zeros(dx.shape[1])
    for k in range(period):
        dx_sum = dx_sum + np.where(defined[k], dx[k], 0.0)
    adx = dx_sum / period
    if defined[period:].all():
        # Same operations as below minus the select: identical values, fewer numpy calls.
        for step in dx[period:]:
            adx = adx * keep
            adx = adx + step
            adx = adx / div
        return adx
    for k in range(period, dx.shape[0]):
        updated = adx * (period - 1)
        updated = updated + dx[k]
        updated = updated / period
        adx = np.where(defined[k], updated, adx)
    return adx
