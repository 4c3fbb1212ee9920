"""Schema of the raw market data (L0) and its validation.

What enters: pandas frames read from files or made by the generator.
What leaves: validated, normalised frames, and the numpy views the feature builder reads
(:class:`Bars`, :class:`MacroDaily`).

Exceptions::

    ValueError
     └── SchemaError   a frame breaks the schema; the message names the table, column and row
"""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from market_data.series import (
    BARS_COLUMNS,
    BARS_TABLE,
    MACRO_COLUMNS,
    MACRO_SERIES,
    MACRO_TABLE,
    PRICE_COLUMNS,
    Bars,
    MacroDaily,
    SchemaError,
)

__all__ = [
    "BARS_COLUMNS",
    "BARS_TABLE",
    "MACRO_COLUMNS",
    "MACRO_SERIES",
    "MACRO_TABLE",
    "PRICE_COLUMNS",
    "Bars",
    "MacroDaily",
    "SchemaError",
    "bars_from_frame",
    "macro_from_frame",
    "validate_bars",
    "validate_macro",
]


def _fail(table: str, column: str, message: str, rows: pd.Index | None = None) -> SchemaError:
    if rows is None or len(rows) == 0:
        return SchemaError(f"{table}: column {column!r}: {message}")
    first = rows[0]
    more = f" (and {len(rows) - 1} more rows)" if len(rows) > 1 else ""
    return SchemaError(f"{table}: column {column!r}, row {first}{more}: {message}")


def _require_columns(df: pd.DataFrame, table: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SchemaError(f"{table}: missing columns {missing}; expected {list(columns)}")


def _float_column(df: pd.DataFrame, table: str, column: str) -> pd.Series:
    try:
        values = pd.to_numeric(df[column], errors="raise").astype("float64")
    except (TypeError, ValueError) as exc:
        raise _fail(table, column, f"not numeric ({exc})") from None
    bad = values.index[~np.isfinite(values.to_numpy())]
    if len(bad):
        raise _fail(table, column, f"NaN or infinite value {values[bad[0]]!r}", bad)
    bad = values.index[values.to_numpy() <= 0.0]
    if len(bad):
        raise _fail(table, column, f"must be > 0, got {values[bad[0]]!r}", bad)
    return values


_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


def _is_aware(value: object) -> bool:
    if isinstance(value, str):
        return _OFFSET.search(value.strip()) is not None
    return isinstance(value, datetime) and value.utcoffset() is not None


def _utc_times(column: pd.Series, table: str) -> pd.Series:
    """``column`` as ``datetime64[ns, UTC]``; naive times (no zone or offset) are rejected."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return column.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if column.dtype == object:
        naive = column.index[~column.map(_is_aware).to_numpy(dtype=bool)]
        if len(naive) == 0:
            try:
                return pd.to_datetime(column, utc=True).astype("datetime64[ns, UTC]")
            except (TypeError, ValueError) as exc:
                raise _fail(table, "time", f"not a timestamp ({exc})") from None
        raise _fail(
            table, "time", f"must be tz-aware (UTC); got {column[naive[0]]!r} without a zone", naive
        )
    raise _fail(table, "time", f"must be tz-aware (UTC); got dtype {column.dtype}")


def validate_bars(df: pd.DataFrame) -> pd.DataFrame:
    """Check a bars frame against the schema; return it normalised.

    The result has exactly :data:`BARS_COLUMNS`, ``time`` as ``datetime64[ns, UTC]``, prices as
    float64, a fresh ``RangeIndex``, rows ordered by symbol then time. Raises
    :class:`SchemaError` naming the column and the (input) row of the first violation.
    """
    table = BARS_TABLE
    _require_columns(df, table, BARS_COLUMNS)
    df = df.reset_index(drop=True)
    symbol = df["symbol"]
    bad = df.index[~symbol.map(lambda s: isinstance(s, str) and len(s) > 0)]
    if len(bad):
        raise _fail(table, "symbol", f"must be a non-empty string, got {symbol[bad[0]]!r}", bad)
    time_col = _utc_times(df["time"], table)
    bad = df.index[time_col.isna().to_numpy()]
    if len(bad):
        raise _fail(table, "time", "missing timestamp", bad)
    out = pd.DataFrame({"symbol": symbol.astype(str), "time": time_col})
    for column in PRICE_COLUMNS:
        out[column] = _float_column(df, table, column)
    o, h, lo, c = (out[col].to_numpy() for col in PRICE_COLUMNS)
    for column, mask, what in (
        ("low", lo > np.minimum(o, c), "low > min(open, close)"),
        ("high", h < np.maximum(o, c), "high < max(open, close)"),
    ):
        bad = out.index[mask]
        if len(bad):
            row = out.loc[bad[0]]
            detail = ", ".join(f"{k}={row[k]!r}" for k in PRICE_COLUMNS)
            raise _fail(table, column, f"OHLC inconsistent: {what} ({detail})", bad)
    for name, group in out.groupby("symbol", sort=False):
        ns = pd.DatetimeIndex(group["time"]).as_unit("ns").asi8
        step = np.diff(ns)
        bad_pos = np.flatnonzero(step <= 0)
        if len(bad_pos):
            idx = group.index[bad_pos + 1]
            kind = "duplicate" if step[bad_pos[0]] == 0 else "unsorted (earlier than the previous)"
            raise _fail(
                table, "time", f"{kind} time {out.loc[idx[0], 'time']} for symbol {name!r}", idx
            )
    return out.sort_values(["symbol", "time"], kind="stable").reset_index(drop=True)


def validate_macro(df: pd.DataFrame) -> pd.DataFrame:
    """Check a macro frame against the schema; return it normalised.

    The result has exactly :data:`MACRO_COLUMNS`, ``date`` as naive ``datetime64[ns]`` at
    midnight (a calendar day), values as float64, strictly ascending weekdays. Raises
    :class:`SchemaError` naming the column and row of the first violation.
    """
    table = MACRO_TABLE
    _require_columns(df, table, MACRO_COLUMNS)
    df = df.reset_index(drop=True)
    try:
        day = pd.to_datetime(df["date"])
    except (TypeError, ValueError) as exc:
        raise _fail(table, "date", f"not a date ({exc})") from None
    if isinstance(day.dtype, pd.DatetimeTZDtype):
        raise _fail(table, "date", "must be a calendar date without a time zone")
    day = day.astype("datetime64[ns]")
    bad = df.index[day.isna().to_numpy()]
    if len(bad):
        raise _fail(table, "date", "missing date", bad)
    bad = df.index[(day != day.dt.normalize()).to_numpy()]
    if len(bad):
        raise _fail(table, "date", f"must be a calendar day, got {day[bad[0]]}", bad)
    bad = df.index[(day.dt.weekday >= 5).to_numpy()]
    if len(bad):
        raise _fail(table, "date", f"{day[bad[0]].date()} is not a weekday", bad)
    step = np.diff(day.to_numpy().astype(np.int64))
    bad_pos = np.flatnonzero(step <= 0)
    if len(bad_pos):
        idx = df.index[bad_pos + 1]
        kind = "duplicate" if step[bad_pos[0]] == 0 else "unsorted (earlier than the previous)"
        raise _fail(table, "date", f"{kind} date {day[idx[0]].date()}", idx)
    out = pd.DataFrame({"date": day})
    for column in MACRO_SERIES:
        out[column] = _float_column(df, table, column)
    return out


def bars_from_frame(df: pd.DataFrame, symbol: str) -> Bars:
    """``symbol``'s bars of a *validated* frame as numpy arrays (copies, contiguous)."""
    rows = df[df["symbol"] == symbol]
    if rows.empty:
        raise KeyError(f"no bars for symbol {symbol!r}")
    ns = pd.DatetimeIndex(rows["time"]).as_unit("ns").asi8
    return Bars(
        symbol=symbol,
        open_time_ns=np.ascontiguousarray(ns, dtype=np.int64),
        open=np.ascontiguousarray(rows["open"].to_numpy(), dtype=np.float64),
        high=np.ascontiguousarray(rows["high"].to_numpy(), dtype=np.float64),
        low=np.ascontiguousarray(rows["low"].to_numpy(), dtype=np.float64),
        close=np.ascontiguousarray(rows["close"].to_numpy(), dtype=np.float64),
    )


def macro_from_frame(df: pd.DataFrame) -> MacroDaily:
    """A *validated* macro frame as numpy arrays (copies, contiguous)."""

    def col(name: str) -> npt.NDArray[np.float64]:
        return np.ascontiguousarray(df[name].to_numpy(), dtype=np.float64)

    return MacroDaily(
        day=df["date"].to_numpy().astype("datetime64[D]"),
        dxy=col("dxy"),
        vix=col("vix"),
        embi=col("embi"),
        brent=col("brent"),
        col_rate=col("col_rate"),
        us_rate=col("us_rate"),
        usdmxn=col("usdmxn"),
    )
