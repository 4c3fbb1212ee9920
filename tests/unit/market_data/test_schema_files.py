"""Loaders: parquet and csv round trips, and precise schema errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market_data.files import (
    bars_path,
    macro_path,
    read_bars,
    read_macro,
    write_bars,
    write_macro,
)
from market_data.generator import generate_bars, generate_macro
from market_data.schema import (
    SchemaError,
    bars_from_frame,
    macro_from_frame,
    validate_bars,
    validate_macro,
)


@pytest.fixture
def bars() -> pd.DataFrame:
    return generate_bars(("USDCOP", "USDMXN"), date(2025, 3, 3), date(2025, 3, 4), seed=1)


@pytest.fixture
def macro() -> pd.DataFrame:
    return generate_macro(date(2025, 1, 1), date(2025, 3, 31), seed=1)


def test_paths(tmp_path: Path) -> None:
    assert bars_path(tmp_path) == tmp_path / "raw" / "usdcop_5m.parquet"
    assert macro_path(tmp_path) == tmp_path / "raw" / "macro_daily.parquet"


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_round_trip(tmp_path: Path, suffix: str, bars: pd.DataFrame, macro: pd.DataFrame) -> None:
    write_bars(tmp_path / "raw" / f"bars{suffix}", bars)
    write_macro(tmp_path / "raw" / f"macro{suffix}", macro)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(
        [f"bars{suffix}", f"macro{suffix}"]
    )  # no temporary files left
    pd.testing.assert_frame_equal(read_bars(tmp_path / "raw" / f"bars{suffix}"), bars)
    pd.testing.assert_frame_equal(read_macro(tmp_path / "raw" / f"macro{suffix}"), macro)


def test_csv_from_a_user(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "symbol,time,open,high,low,close\n"
        "USDCOP,2025-03-03T13:00:00+00:00,4100.5,4102,4099,4101.25\n"
        "USDCOP,2025-03-03T08:05:00-05:00,4101.25,4103,4100,4102\n"
    )
    frame = read_bars(path)
    assert frame["time"].tolist() == [
        pd.Timestamp("2025-03-03 13:00", tz="UTC"),
        pd.Timestamp("2025-03-03 13:05", tz="UTC"),
    ]
    assert frame["close"].tolist() == [4101.25, 4102.0]


def test_csv_time_without_zone_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "symbol,time,open,high,low,close\n"
        "USDCOP,2025-03-03T13:00:00Z,4100.5,4102,4099,4101.25\n"
        "USDCOP,2025-03-03 13:05:00,4101.25,4103,4100,4102\n"
    )
    with pytest.raises(SchemaError, match=r"column 'time', row 1: must be tz-aware"):
        read_bars(path)


def test_unsupported_suffix(tmp_path: Path, bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unsupported format"):
        write_bars(tmp_path / "bars.json", bars)


def test_missing_columns(bars: pd.DataFrame, macro: pd.DataFrame) -> None:
    with pytest.raises(SchemaError, match=r"usdcop_5m: missing columns \['low'\]"):
        validate_bars(bars.drop(columns="low"))
    with pytest.raises(SchemaError, match=r"macro_daily: missing columns \['vix', 'embi'\]"):
        validate_macro(macro.drop(columns=["vix", "embi"]))


def test_nan_price_names_column_and_row(bars: pd.DataFrame) -> None:
    bars.loc[7, "close"] = np.nan
    with pytest.raises(SchemaError, match=r"column 'close', row 7: NaN"):
        validate_bars(bars)


def test_naive_time_rejected(bars: pd.DataFrame) -> None:
    bars["time"] = bars["time"].dt.tz_localize(None)
    with pytest.raises(SchemaError, match=r"column 'time': must be tz-aware"):
        validate_bars(bars)


def test_ohlc_inconsistent(bars: pd.DataFrame) -> None:
    bars.loc[3, "low"] = max(bars.loc[3, "open"], bars.loc[3, "close"]) + 1.0
    with pytest.raises(SchemaError, match=r"column 'low', row 3: OHLC inconsistent: low > min"):
        validate_bars(bars)
    good = generate_bars(end=date(2025, 3, 3), start=date(2025, 3, 3))
    good.loc[5, "high"] = min(good.loc[5, "open"], good.loc[5, "close"]) - 1.0
    with pytest.raises(SchemaError, match=r"column 'high', row 5: OHLC inconsistent: high <"):
        validate_bars(good)


def test_duplicate_and_unsorted_times(bars: pd.DataFrame) -> None:
    dup = bars.copy()
    dup.loc[10, "time"] = dup.loc[9, "time"]
    with pytest.raises(SchemaError, match=r"column 'time', row 10: duplicate time .*'USDCOP'"):
        validate_bars(dup)
    swapped = bars.copy()
    swapped.loc[[20, 21], "time"] = swapped.loc[[21, 20], "time"].to_numpy()
    with pytest.raises(SchemaError, match=r"row 21: unsorted"):
        validate_bars(swapped)


def test_non_positive_and_non_numeric(bars: pd.DataFrame) -> None:
    bad = bars.copy()
    bad.loc[2, "open"] = 0.0
    with pytest.raises(SchemaError, match=r"column 'open', row 2: must be > 0"):
        validate_bars(bad)
    text = bars.astype({"high": object})
    text.loc[4, "high"] = "n/a"
    with pytest.raises(SchemaError, match=r"column 'high': not numeric"):
        validate_bars(text)


def test_macro_errors(macro: pd.DataFrame) -> None:
    weekend = macro.copy()
    weekend.loc[3, "date"] = pd.Timestamp("2025-01-04")  # a Saturday
    with pytest.raises(SchemaError, match=r"column 'date', row 3: 2025-01-04 is not a weekday"):
        validate_macro(weekend)
    dup = macro.copy()
    dup.loc[5, "date"] = dup.loc[4, "date"]
    with pytest.raises(SchemaError, match=r"column 'date', row 5: duplicate date"):
        validate_macro(dup)
    nan = macro.copy()
    nan.loc[8, "vix"] = np.nan
    with pytest.raises(SchemaError, match=r"column 'vix', row 8: NaN"):
        validate_macro(nan)
    timed = macro.copy()
    timed.loc[1, "date"] = timed.loc[1, "date"] + pd.Timedelta(hours=6)
    with pytest.raises(SchemaError, match=r"column 'date', row 1: must be a calendar day"):
        validate_macro(timed)


def test_numpy_views(bars: pd.DataFrame, macro: pd.DataFrame) -> None:
    view = bars_from_frame(bars, "USDMXN")
    part = bars[bars["symbol"] == "USDMXN"]
    assert len(view) == len(part) == 120
    assert view.open_time_ns[0] == pd.Timestamp("2025-03-03 13:00", tz="UTC").value
    assert np.array_equal(view.close, part["close"].to_numpy())
    assert view.tail(5).open_time_ns.tolist() == view.open_time_ns[-5:].tolist()
    with pytest.raises(KeyError):
        bars_from_frame(bars, "EURUSD")
    m = macro_from_frame(macro)
    assert m.day.dtype == np.dtype("datetime64[D]") and m.day[0] == np.datetime64("2025-01-01")
    assert np.array_equal(m.embi, macro["embi"].to_numpy())
