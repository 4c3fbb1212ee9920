"""The raw market data's shape without pandas: table and column names, and the numpy views
the feature builder reads.

What enters: nothing (definitions). What leaves: :class:`Bars` (one symbol's 5-minute bars),
:class:`MacroDaily` (the daily macro prints), :class:`SchemaError`, and the tables' names and
columns. Kept apart from :mod:`market_data.schema` (the pandas validation) so that the server's
compute fallback and the feature builder import numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BARS_TABLE = "usdcop_5m"
MACRO_TABLE = "macro_daily"

BARS_COLUMNS: tuple[str, ...] = ("symbol", "time", "open", "high", "low", "close")
"""Columns of the 5-minute bars table, in stored order."""

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")

MACRO_SERIES: tuple[str, ...] = ("dxy", "vix", "embi", "brent", "col_rate", "us_rate", "usdmxn")
"""Value columns of the daily macro table."""

MACRO_COLUMNS: tuple[str, ...] = ("date", *MACRO_SERIES)
"""Columns of the daily macro table, in stored order."""


class SchemaError(ValueError):
    """A bars or macro frame breaks the documented schema."""


@dataclass(frozen=True)
class Bars:
    """One symbol's 5-minute bars, ascending by open time (session gaps are not bars)."""

    symbol: str
    open_time_ns: npt.NDArray[np.int64]
    """UTC nanoseconds since the epoch of each bar's open, strictly ascending."""
    open: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    close: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        n = len(self.open_time_ns)
        if any(len(a) != n for a in (self.open, self.high, self.low, self.close)):
            raise ValueError("Bars arrays must all have the same length")

    def __len__(self) -> int:
        return len(self.open_time_ns)

    def head(self, count: int) -> Bars:
        """The first ``count`` bars (all of them if there are fewer)."""
        return Bars(
            symbol=self.symbol,
            open_time_ns=self.open_time_ns[:count],
            open=self.open[:count],
            high=self.high[:count],
            low=self.low[:count],
            close=self.close[:count],
        )

    def tail(self, count: int) -> Bars:
        """The last ``count`` bars (all of them if there are fewer)."""
        start = max(len(self) - count, 0)
        return Bars(
            symbol=self.symbol,
            open_time_ns=self.open_time_ns[start:],
            open=self.open[start:],
            high=self.high[start:],
            low=self.low[start:],
            close=self.close[start:],
        )


@dataclass(frozen=True)
class MacroDaily:
    """Daily macro prints, one row per weekday, ascending by day."""

    day: npt.NDArray[np.datetime64]
    """``datetime64[D]`` calendar day of each print."""
    dxy: npt.NDArray[np.float64]
    vix: npt.NDArray[np.float64]
    embi: npt.NDArray[np.float64]
    """Spread in basis points."""
    brent: npt.NDArray[np.float64]
    col_rate: npt.NDArray[np.float64]
    """Percent."""
    us_rate: npt.NDArray[np.float64]
    """Percent."""
    usdmxn: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.day)
