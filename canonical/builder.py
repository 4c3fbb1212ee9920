"""The canonical 15-feature builder (L1): one implementation for batch and latest window.

What enters: one symbol's 5-minute :class:`~market_data.schema.Bars` and the
:class:`~market_data.schema.MacroDaily` prints.
What leaves: :class:`FeatureRows` -- per emitted bar, its event time (bar open + 5 min) and
the 15 features as float32 in contract order (:mod:`canonical.contract`).

Definitions (bars in index order; session gaps are not bars):

- ``log_ret_5m/1h/4h`` = ln(C_t / C_t-k), k = 1, 12, 48 bars.
- ``rsi_9``, ``atr_pct`` = ATR_14 / C_t, ``adx_14``: Wilder, TA-Lib seeding (see
  :mod:`canonical.indicators`).
- Macro, point in time: a bar whose open falls on UTC day D uses the latest macro row dated
  strictly before D (a print is known only after its day closes). ``dxy_z``, ``vix_z``,
  ``embi_z`` = (x_d - mean) / std over the 60 rows ending at that row, population std
  (ddof=0; a constant window gives 0). ``*_change_1d`` = x_d / x_d-1 - 1 (previous row).
  ``rate_spread`` = col_rate - us_rate (percentage points).
- ``position`` = :func:`position_rule` (no trade log exists); ``time_normalized`` =
  :func:`time_normalized` of the event time.

Fixed trailing window: every row's indicators are computed over the ``window_bars`` bars
ending at it, with Wilder's recursions seeded TA-Lib style at the window's first bar.
``batch()`` evaluates many such windows at once and ``latest()`` one, through the same
function with the same element-wise operation order, so ``latest(bars[:i + 1])`` equals
``batch(bars)`` row i bit for bit in float32. A row is emitted only when its window is full
and its macro row has 60 rows of history (warm-up) and all 15 values are finite.

Exceptions::

    Exception
     └── BuilderError
          └── InsufficientHistory   latest() lacks bars or macro history for the last bar
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from canonical.contract import FEATURE_INDEX, N_FEATURES
from canonical.indicators import adx_last, atr_last, min_window, rsi_last
from market_data.series import Bars, MacroDaily
from market_data.session import BAR_NS, SESSION_OPEN_UTC

WINDOW_BARS = 300
"""Each row's indicators are computed over the trailing 300 bars ending at it, seeded TA-Lib
style at the window's start: batch and latest-window are the same function, so they agree
bit for bit (float32); against TA-Lib over the full history they agree to ~1e-6 after
warm-up."""

RSI_PERIOD = 9
ATR_PERIOD = 14
ADX_PERIOD = 14
RETURN_LAGS = {"log_ret_5m": 1, "log_ret_1h": 12, "log_ret_4h": 48}
"""Lag in bars of each log return."""
MACRO_Z_DAYS = 60
"""Macro rows in each z-score window (the row itself and the 59 before it)."""
STATE_SPAN_MINUTES = 300
"""time_normalized divides minutes since the session open by this (13:00 -> 18:00 UTC)."""

MIN_WINDOW_BARS = max(max(RETURN_LAGS.values()) + 1, min_window(ADX_PERIOD))
_CHUNK_ROWS = 2048
"""Windows evaluated per step of batch(); bounds memory, does not change any value."""

_DAY_NS = 86_400_000_000_000
_OPEN_NS = (SESSION_OPEN_UTC.hour * 60 + SESSION_OPEN_UTC.minute) * 60_000_000_000
_SPAN_NS = float(STATE_SPAN_MINUTES * 60_000_000_000)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class BuilderError(Exception):
    """Base of the feature builder's errors."""


class InsufficientHistory(BuilderError):  # noqa: N818 -- name fixed by the shared interface
    """The last bar has no complete window, macro history or finite features yet."""


@dataclass(frozen=True)
class FeatureRows:
    """Feature rows of one symbol, ascending by event time."""

    symbol: str
    event_time_ns: IntArray
    """UTC ns of each row's event time: its bar's open + 5 minutes (its close is known)."""
    values: npt.NDArray[np.float32]
    """Shape (rows, 15), contract order."""
    bar_index: IntArray
    """Index of each row's bar in the input :class:`Bars`."""

    def __len__(self) -> int:
        return len(self.event_time_ns)


def position_rule(log_ret_1h: FloatArray) -> FloatArray:
    """Historical position: the sign of the 1-hour log return (+1 long, -1 short, 0 flat).

    A deterministic stand-in for the agent's position, as no trade log exists: it is what a
    1-hour momentum follower holds after the bar closes. Always in [-1, 1].
    """
    return np.sign(np.asarray(log_ret_1h, dtype=np.float64))


def time_normalized(event_time_ns: IntArray) -> npt.NDArray[np.float32]:
    """Minutes from 13:00 UTC of the event time's UTC day to the event time, / 300, in [0, 1].

    The 13:00 bar (event 13:05) gives 5/300; the 17:55 bar (event 18:00) gives 1.0; earlier
    times clip to 0 and later ones to 1.
    """
    since_open = (np.asarray(event_time_ns, dtype=np.int64) % _DAY_NS) - _OPEN_NS
    return np.clip(since_open.astype(np.float64) / _SPAN_NS, 0.0, 1.0).astype(np.float32)


def _log_ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    # math.log per element: one libm routine whatever the array length, so a batch and a
    # single window cannot take different (SIMD vs scalar) code paths.
    ratio = (num / den).tolist()
    logs = (math.log(x) if x > 0.0 else (-math.inf if x == 0.0 else math.nan) for x in ratio)
    return np.fromiter(logs, dtype=np.float64, count=len(ratio))


def _technical(close: FloatArray, high: FloatArray, low: FloatArray) -> FloatArray:
    """``(rows, window)`` windows -> ``(rows, 6)`` technical features of each last bar."""
    last = close[:, -1]
    returns = [_log_ratio(last, close[:, -1 - lag]) for lag in RETURN_LAGS.values()]
    atr = atr_last(high, low, close, ATR_PERIOD)
    return np.column_stack(
        [
            *returns,
            rsi_last(close, RSI_PERIOD),
            atr / last,
            adx_last(high, low, close, ADX_PERIOD),
        ]
    )


def _zscore_last(window: FloatArray) -> FloatArray:
    """Population z-score of each row's last value within its ``(rows, days)`` window."""
    cols = np.ascontiguousarray(window.T)
    days = cols.shape[0]
    total = np.zeros(cols.shape[1])
    for value in cols:
        total = total + value
    mean = total / days
    squares = np.zeros(cols.shape[1])
    for value in cols:
        dev = value - mean
        squares = squares + dev * dev
    std = np.sqrt(squares / days)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (cols[-1] - mean) / std
    return np.where(std > 0.0, z, 0.0)


def _macro_rows(macro: MacroDaily, rows: IntArray) -> FloatArray:
    """Macro features ``(len(rows), 7)`` of the given macro rows (each >= MACRO_Z_DAYS - 1)."""
    first = rows - (MACRO_Z_DAYS - 1)
    offsets = np.arange(MACRO_Z_DAYS)

    index = first[:, None] + offsets
    # One stacked window for the three z-scores: element-wise, so no value changes.
    z_dxy, z_vix, z_embi = np.split(
        _zscore_last(np.concatenate([macro.dxy[index], macro.vix[index], macro.embi[index]])), 3
    )

    def change(series: FloatArray) -> FloatArray:
        return series[rows] / series[rows - 1] - 1.0

    return np.column_stack(
        [
            z_dxy,
            change(macro.dxy),
            z_vix,
            z_embi,
            change(macro.brent),
            macro.col_rate[rows] - macro.us_rate[rows],
            change(macro.usdmxn),
        ]
    )


class CanonicalFeatureBuilder:
    """Builds the 15 canonical features of a symbol's bars; batch and latest share one path.

    Example::

        builder = CanonicalFeatureBuilder()
        table = builder.batch(bars, macro)        # offline tables
        row = builder.latest(bars, macro)         # server fallback, == table's last row
    """

    def __init__(self, window_bars: int = WINDOW_BARS) -> None:
        if window_bars < MIN_WINDOW_BARS:
            raise ValueError(f"window_bars must be >= {MIN_WINDOW_BARS}, got {window_bars}")
        self.window_bars = window_bars
        self.min_bars = window_bars
        """Bars needed before the first row is emitted (the first full window)."""

    def batch(self, bars: Bars, macro: MacroDaily) -> FeatureRows:
        """Every emittable row of ``bars`` (warm-up and non-finite rows dropped)."""
        ends = np.arange(self.window_bars - 1, len(bars), dtype=np.int64)
        parts = [
            self._rows(bars, macro, ends[i : i + _CHUNK_ROWS])
            for i in range(0, len(ends), _CHUNK_ROWS)
        ]
        if not parts:
            return _empty(bars.symbol)
        return FeatureRows(
            symbol=bars.symbol,
            event_time_ns=np.concatenate([p.event_time_ns for p in parts]),
            values=np.concatenate([p.values for p in parts]),
            bar_index=np.concatenate([p.bar_index for p in parts]),
        )

    def latest(self, bars: Bars, macro: MacroDaily, position: float | None = None) -> FeatureRows:
        """Exactly one row: the features of the last bar.

        Reads only the last ``window_bars`` bars and the macro rows they need.
        ``position`` overrides :func:`position_rule` (e.g. the agent's live position; must
        be in [-1, 1]). Raises :class:`InsufficientHistory` if the row can't be emitted.
        """
        if len(bars) < self.window_bars:
            raise InsufficientHistory(
                f"{bars.symbol}: {len(bars)} bars, need {self.window_bars} for a full window"
            )
        if position is not None and not -1.0 <= position <= 1.0:
            raise ValueError(f"position must be in [-1, 1], got {position!r}")
        window = bars.tail(self.window_bars)
        rows = self._rows(window, macro, np.array([self.window_bars - 1], dtype=np.int64))
        if len(rows) != 1:
            raise InsufficientHistory(
                f"{bars.symbol}: the last bar has no macro row with {MACRO_Z_DAYS} days of"
                " history before its day, or a non-finite feature"
            )
        values = rows.values
        if position is not None:
            values = values.copy()
            values[0, FEATURE_INDEX["position"]] = np.float32(position)
        return FeatureRows(
            symbol=bars.symbol,
            event_time_ns=rows.event_time_ns,
            values=values,
            bar_index=np.array([len(bars) - 1], dtype=np.int64),
        )

    def _rows(self, bars: Bars, macro: MacroDaily, ends: IntArray) -> FeatureRows:
        """Rows for the bars at indices ``ends`` (each >= window_bars - 1); the one code path."""
        with np.errstate(all="ignore"):  # bad inputs give NaN/inf rows, which are dropped
            return self._rows_unchecked(bars, macro, ends)

    def _rows_unchecked(self, bars: Bars, macro: MacroDaily, ends: IntArray) -> FeatureRows:
        starts = ends - (self.window_bars - 1)

        def windows(series: FloatArray) -> FloatArray:
            return sliding_window_view(series, self.window_bars)[starts]

        technical = _technical(windows(bars.close), windows(bars.high), windows(bars.low))

        open_ns = bars.open_time_ns[ends]
        bar_day = (open_ns // _DAY_NS).astype("datetime64[D]")
        macro_row = np.searchsorted(macro.day, bar_day, side="left").astype(np.int64) - 1
        has_macro = macro_row >= MACRO_Z_DAYS - 1
        unique_rows, where = np.unique(macro_row[has_macro], return_inverse=True)
        macro_values = np.full((len(ends), 7), np.nan)
        if len(unique_rows):
            macro_values[has_macro] = _macro_rows(macro, unique_rows)[where]

        event_ns = open_ns + BAR_NS
        state = np.column_stack(
            [
                position_rule(technical[:, FEATURE_INDEX["log_ret_1h"]]),
                time_normalized(event_ns).astype(np.float64),
            ]
        )
        values = np.hstack([technical, macro_values, state]).astype(np.float32)
        assert values.shape[1] == N_FEATURES
        keep = has_macro & np.isfinite(values).all(axis=1)
        return FeatureRows(
            symbol=bars.symbol,
            event_time_ns=event_ns[keep],
            values=values[keep],
            bar_index=ends[keep],
        )


def _empty(symbol: str) -> FeatureRows:
    return FeatureRows(
        symbol=symbol,
        event_time_ns=np.empty(0, dtype=np.int64),
        values=np.empty((0, N_FEATURES), dtype=np.float32),
        bar_index=np.empty(0, dtype=np.int64),
    )
