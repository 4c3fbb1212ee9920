"""Seeded, deterministic generator of USD/COP-like 5-minute bars and daily macro prints.

What enters: a date span (or the existing frames, for the live mode), symbols and a seed.
What leaves: frames in the documented schema (:mod:`market_data.schema`), already valid.

Price model, per symbol: the log price follows a mean-reverting (Ornstein-Uhlenbeck) walk
around the symbol's level, with a per-day volatility regime, a U-shaped intraday volatility
profile, rare jumps and a small gap between sessions. Inside a session a bar opens at the
previous close. Prices are rounded to the symbol's quote precision (2 decimals for USDCOP).
Macro series are mean-reverting walks kept inside plausible bands (hard-clipped); ``vix`` has
upward spikes; the two policy rates move in rare 25 bp steps.

Same inputs, same frame: every random draw comes from a generator seeded by
``(seed, crc32(symbol or series), ...)``, never from global state or ``hash()``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from market_data.schema import BARS_COLUMNS, MACRO_COLUMNS, MACRO_SERIES
from market_data.session import BAR_NS, BARS_PER_SESSION, session_bar_opens, weekdays

DEFAULT_SYMBOLS: tuple[str, ...] = ("USDCOP",)
DEFAULT_SEED = 7
DEFAULT_DAYS = 365
"""Default span of generated history, in calendar days."""

MACRO_WARMUP_WEEKDAYS = 65
"""Weekdays of macro history the feature builder needs before the first bar's day
(a 60-day z-score window plus the previous print). See :func:`macro_start_for`."""


@dataclass(frozen=True)
class _PriceModel:
    level: float
    """Centre of mean reversion."""
    vol_per_bar: float
    """Log-return standard deviation of one 5-minute bar in a normal regime."""
    reversion_per_bar: float
    """Fraction of the log distance to the centre recovered per bar."""
    band: float
    """Hard bound of |log(price / level)| (the path is reflected inside it)."""
    decimals: int


_KNOWN_LEVELS = {"USDCOP": 4150.0, "USDMXN": 18.5, "USDBRL": 5.2, "EURUSD": 1.08, "USDCLP": 940.0}


def _price_model(symbol: str) -> _PriceModel:
    crc = zlib.crc32(symbol.encode())
    level = _KNOWN_LEVELS.get(symbol, 10.0 ** (crc % 4) * (1.0 + (crc >> 8) % 9))
    decimals = max(2, 5 - math.floor(math.log10(level)))
    # 5 bp per bar (~0.4 %/day); half-life of a deviation ~ 2,200 bars (~37 sessions), so the
    # stationary spread is ~2 % and a year stays within +-8 % of the level (3,800-4,500 for COP).
    return _PriceModel(
        level=level, vol_per_bar=5e-4, reversion_per_bar=3e-4, band=0.075, decimals=decimals
    )


def _rng(seed: int, *parts: str | int) -> np.random.Generator:
    words = [seed & 0xFFFFFFFF]
    for part in parts:
        if isinstance(part, str):
            words.append(zlib.crc32(part.encode()))
        else:
            words.extend([part & 0xFFFFFFFF, (part >> 32) & 0xFFFFFFFF])
    return np.random.default_rng(words)


def _to_ns(moments: Sequence[datetime]) -> npt.NDArray[np.int64]:
    for moment in moments:
        if moment.tzinfo is None:
            raise ValueError(f"bar open times must be tz-aware, got naive {moment!r}")
    stamps = pd.DatetimeIndex([pd.Timestamp(m).tz_convert("UTC") for m in moments])
    return np.asarray(stamps.as_unit("ns").asi8, dtype=np.int64)


def _simulate(
    model: _PriceModel,
    rng: np.random.Generator,
    open_ns: npt.NDArray[np.int64],
    prev_close: float,
    prev_open_ns: int | None,
) -> dict[str, npt.NDArray[np.float64]]:
    """OHLC for bars opening at ``open_ns``, continuing from ``prev_close``."""
    n = len(open_ns)
    day = open_ns // 86_400_000_000_000
    prev_ns = np.concatenate(([open_ns[0] - BAR_NS if prev_open_ns is None else prev_open_ns],
                              open_ns[:-1]))  # fmt: skip
    new_session = (open_ns - prev_ns) != BAR_NS
    # Volatility regime: one lognormal multiplier per UTC day.
    unique_days, day_pos = np.unique(day, return_inverse=True)
    regime = np.exp(rng.normal(-0.02, 0.2, size=len(unique_days)))[day_pos]
    minute = (open_ns % 86_400_000_000_000) // 60_000_000_000
    bar_in_session = np.clip((minute - 13 * 60) // 5, 0, BARS_PER_SESSION - 1)
    u = (bar_in_session - (BARS_PER_SESSION - 1) / 2) / ((BARS_PER_SESSION - 1) / 2)
    intraday = 0.8 + 0.5 * u * u  # U shape: busier at open and close
    sigma = model.vol_per_bar * regime * intraday
    shocks = rng.standard_normal(n) * sigma
    jumps = np.where(rng.random(n) < 0.002, rng.normal(0.0, 25e-4, n), 0.0)
    gaps = np.where(new_session, rng.normal(0.0, 8e-4, n), 0.0)
    wick_up = np.abs(rng.normal(0.0, 0.6, n)) * sigma
    wick_down = np.abs(rng.normal(0.0, 0.6, n)) * sigma

    centre = math.log(model.level)
    scale = 10.0**model.decimals
    opens = np.empty(n)
    closes = np.empty(n)
    x = math.log(prev_close)
    last_close = prev_close
    for i in range(n):
        if gaps[i] != 0.0:
            x += gaps[i]
            bar_open = round(math.exp(x) * scale) / scale
        else:
            bar_open = last_close
        x += model.reversion_per_bar * (centre - x) + shocks[i] + jumps[i]
        # Reflect at the band so a long or unlucky path keeps a plausible level.
        hi, lo = centre + model.band, centre - model.band
        if x > hi:
            x = 2.0 * hi - x
        elif x < lo:
            x = 2.0 * lo - x
        last_close = round(math.exp(x) * scale) / scale
        opens[i] = bar_open
        closes[i] = last_close
    top = np.maximum(opens, closes)
    bottom = np.minimum(opens, closes)
    # Rounding is monotone, so rounded wicks stay outside the rounded body.
    highs = np.round(top * np.exp(wick_up), model.decimals)
    lows = np.round(bottom * np.exp(-wick_down), model.decimals)
    return {
        "open": opens,
        "high": np.maximum(highs, top),
        "low": np.minimum(lows, bottom),
        "close": closes,
    }


def _bars_frame(symbol: str, open_ns: npt.NDArray[np.int64], ohlc: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": symbol,
            "time": pd.to_datetime(open_ns, utc=True).astype("datetime64[ns, UTC]"),
            **ohlc,
        },
        columns=list(BARS_COLUMNS),
    )


def default_span(end: date, days: int = DEFAULT_DAYS) -> tuple[date, date]:
    """``(start, end)`` covering ``days`` calendar days ending at ``end``."""
    return end - timedelta(days=days - 1), end


def generate_bars(
    symbols: Iterable[str] = DEFAULT_SYMBOLS,
    start: date | None = None,
    end: date | None = None,
    seed: int = DEFAULT_SEED,
) -> pd.DataFrame:
    """Session bars (60 a weekday, 13:00-17:55 UTC opens) of every weekday in ``[start, end]``.

    ``end`` defaults to 2025-12-31 and ``start`` to :data:`DEFAULT_DAYS` before it (the
    generator never reads the wall clock). Rows are ordered by symbol, then time.
    """
    end = end or date(2025, 12, 31)
    start = start or default_span(end)[0]
    opens = [t for day in weekdays(start, end) for t in session_bar_opens(day)]
    frames = []
    for symbol in symbols:
        model = _price_model(symbol)
        if not opens:
            frames.append(_bars_frame(symbol, np.empty(0, np.int64), {}))
            continue
        open_ns = _to_ns(opens)
        rng = _rng(seed, "bars", symbol, start.toordinal())
        ohlc = _simulate(model, rng, open_ns, prev_close=model.level, prev_open_ns=None)
        frames.append(_bars_frame(symbol, open_ns, ohlc))
    return pd.concat(frames, ignore_index=True)


def next_bars(last: pd.DataFrame, open_times: Sequence[datetime], seed: int) -> pd.DataFrame:
    """Continue each symbol's path with bars opening at ``open_times`` (the live mode).

    ``last`` is the existing bars frame (or any frame with at least each symbol's last bar).
    ``open_times`` are tz-aware and need not be session times (the live mode simulates an
    always-open market); each must be later than the symbol's last bar. Returns only the new
    bars, ordered by symbol then time. Deterministic in (last bar, open_times, seed).
    """
    open_ns = np.sort(_to_ns(open_times))
    frames = []
    for symbol, group in last.groupby("symbol", sort=True):
        tail = group.sort_values("time").iloc[-1]
        prev_ns = int(pd.Timestamp(tail["time"]).as_unit("ns").value)
        if len(open_ns) and open_ns[0] <= prev_ns:
            raise ValueError(f"{symbol}: open time {open_times[0]} is not after the last bar")
        model = _price_model(str(symbol))
        if not len(open_ns):
            continue
        rng = _rng(seed, "next", str(symbol), prev_ns, int(open_ns[0]))
        ohlc = _simulate(model, rng, open_ns, float(tail["close"]), prev_ns)
        frames.append(_bars_frame(str(symbol), open_ns, ohlc))
    if not frames:
        return pd.DataFrame(columns=list(BARS_COLUMNS))
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class _MacroModel:
    centre: float
    vol: float
    """Daily log-change standard deviation."""
    reversion: float
    low: float
    high: float


_MACRO_MODELS = {
    "dxy": _MacroModel(104.5, 0.004, 0.04, 100.5, 109.5),
    "vix": _MacroModel(16.5, 0.06, 0.10, 11.5, 36.0),
    "embi": _MacroModel(340.0, 0.012, 0.03, 260.0, 440.0),
    "brent": _MacroModel(77.0, 0.017, 0.03, 61.0, 94.0),
    "usdmxn": _MacroModel(18.4, 0.007, 0.03, 16.7, 20.3),
}
_RATES = {"col_rate": (11.0, 9.25, 12.75, 1 / 25), "us_rate": (4.75, 4.0, 5.5, 1 / 40)}
"""centre, low, high, probability of a 25 bp move per weekday."""


def _macro_rows(
    rng: np.random.Generator, state: dict[str, float], count: int
) -> dict[str, npt.NDArray[np.float64]]:
    out = {name: np.empty(count) for name in MACRO_SERIES}
    shocks = rng.standard_normal((count, len(_MACRO_MODELS)))
    spikes = rng.random(count) < 0.03
    spike_size = rng.uniform(0.15, 0.45, count)
    rate_draws = rng.random((count, len(_RATES)))
    for i in range(count):
        for j, (name, m) in enumerate(_MACRO_MODELS.items()):
            x = math.log(state[name])
            x += m.reversion * (math.log(m.centre) - x) + m.vol * shocks[i, j]
            if name == "vix" and spikes[i]:
                x += spike_size[i]
            if name == "embi":  # risk-off days widen the spread too
                x += 0.15 * spike_size[i] if spikes[i] else 0.0
            state[name] = min(max(math.exp(x), m.low), m.high)
        for j, (name, (centre, low, high, prob)) in enumerate(_RATES.items()):
            if rate_draws[i, j] < prob:
                toward = 1.0 if state[name] < centre else -1.0
                step = 0.25 * (toward if rate_draws[i, j] < prob * 0.7 else -toward)
                state[name] = min(max(state[name] + step, low), high)
        for name in MACRO_SERIES:
            out[name][i] = round(state[name], 4)
    return out


def _macro_frame(days: list[date], values: dict[str, npt.NDArray[np.float64]]) -> pd.DataFrame:
    frame = pd.DataFrame({"date": pd.to_datetime(days).astype("datetime64[ns]")})
    for name in MACRO_SERIES:
        frame[name] = values[name]
    return frame[list(MACRO_COLUMNS)]


def macro_start_for(bars_start: date) -> date:
    """First day of a macro span that gives the bars starting at ``bars_start`` full features."""
    day, count = bars_start, 0
    while count < MACRO_WARMUP_WEEKDAYS:
        day -= timedelta(days=1)
        count += day.weekday() < 5
    return day


def generate_macro(
    start: date | None = None, end: date | None = None, seed: int = DEFAULT_SEED
) -> pd.DataFrame:
    """One macro row per weekday in ``[start, end]``.

    Defaults: ``end`` 2025-12-31, ``start`` :func:`macro_start_for` the default bars start, so
    the default bars get macro features from their first day.
    """
    end = end or date(2025, 12, 31)
    start = start or macro_start_for(default_span(end)[0])
    days = weekdays(start, end)
    state = {name: m.centre for name, m in _MACRO_MODELS.items()}
    state.update({name: spec[0] for name, spec in _RATES.items()})
    values = _macro_rows(_rng(seed, "macro", start.toordinal()), state, len(days))
    return _macro_frame(days, values)


def extend_macro(existing: pd.DataFrame, end: date, seed: int) -> pd.DataFrame:
    """``existing`` plus one row per weekday after its last date up to ``end`` (the live mode).

    Returns the whole frame (existing rows unchanged). Deterministic in (last row, end, seed).
    """
    if existing.empty:
        raise ValueError("extend_macro needs at least one existing row to continue from")
    last_day = pd.Timestamp(existing["date"].iloc[-1]).date()
    days = weekdays(last_day + timedelta(days=1), end)
    if not days:
        return existing.reset_index(drop=True)
    state = {name: float(existing[name].iloc[-1]) for name in MACRO_SERIES}
    values = _macro_rows(_rng(seed, "macro-next", last_day.toordinal()), state, len(days))
    return pd.concat([existing, _macro_frame(days, values)], ignore_index=True)
