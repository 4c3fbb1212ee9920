"""The fallback's numpy reader gives the pandas reader's arrays and rows bit for bit."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from canonical.builder import CanonicalFeatureBuilder
from market_data import columnar, files, generator, schema
from market_data.series import SchemaError
from server.fallback import compute_rows

START = date(2025, 11, 3)
END = date(2025, 12, 12)


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    bars = generator.generate_bars(symbols=("USDCOP", "USDMXN"), start=START, end=END)
    macro = generator.generate_macro(start=generator.macro_start_for(START), end=END)
    return bars, macro


def _write(tmp_path: Path, bars: pd.DataFrame, macro: pd.DataFrame) -> Path:
    files.write_bars(files.bars_path(tmp_path), bars)
    files.write_macro(files.macro_path(tmp_path), macro)
    return tmp_path


def test_arrays_equal_the_pandas_readers(
    tmp_path: Path, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    data_dir = _write(tmp_path, *frames)
    bars_frame = files.read_bars(files.bars_path(data_dir))
    symbols = tuple(sorted(bars_frame["symbol"].unique()))
    got = columnar.read_bars(files.bars_path(data_dir), symbols)
    assert sorted(got) == list(symbols)
    for symbol in symbols:
        want = schema.bars_from_frame(bars_frame, symbol)
        for field in ("open_time_ns", "open", "high", "low", "close"):
            a, b = getattr(got[symbol], field), getattr(want, field)
            assert a.dtype == b.dtype
            assert a.tobytes() == b.tobytes(), field
    macro = columnar.read_macro(files.macro_path(data_dir))
    want_macro = schema.macro_from_frame(files.read_macro(files.macro_path(data_dir)))
    for field in ("day", *schema.MACRO_SERIES):
        assert getattr(macro, field).tobytes() == getattr(want_macro, field).tobytes(), field


def test_rows_on_random_windows_equal_the_builder_on_pandas_frames(
    tmp_path: Path, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    bars, macro = frames
    usdcop = bars[bars["symbol"] == "USDCOP"].reset_index(drop=True)
    builder = CanonicalFeatureBuilder()
    rng = np.random.default_rng(17)
    ends = sorted(rng.choice(np.arange(builder.min_bars + 60, len(usdcop)), 12, replace=False))
    checked = 0
    for end in ends:
        data_dir = _write(tmp_path / str(end), usdcop.iloc[: int(end)], macro)
        rows = compute_rows(data_dir, ("USDCOP",))
        want = builder.latest(
            schema.bars_from_frame(files.read_bars(files.bars_path(data_dir)), "USDCOP"),
            schema.macro_from_frame(files.read_macro(files.macro_path(data_dir))),
        )
        got = np.array(rows["USDCOP"].values, dtype=np.float32)
        assert got.tobytes() == want.values[-1].tobytes()
        assert rows["USDCOP"].event_time_ns == int(want.event_time_ns[-1])
        checked += 1
    assert checked == 12


def test_rejects_what_the_schema_rejects(
    tmp_path: Path, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    bars, macro = frames
    usdcop = bars[bars["symbol"] == "USDCOP"].reset_index(drop=True)
    path = tmp_path / "bars.parquet"
    usdcop.iloc[::-1].to_parquet(path, index=False)
    with pytest.raises(SchemaError, match="unsorted"):
        columnar.read_bars(path, ("USDCOP",))
    usdcop.assign(time=usdcop["time"].dt.tz_localize(None)).to_parquet(path, index=False)
    with pytest.raises(SchemaError, match="tz-aware"):
        columnar.read_bars(path, ("USDCOP",))
    usdcop.assign(low=usdcop["low"] * 0.0).to_parquet(path, index=False)
    with pytest.raises(SchemaError, match="'low'"):
        columnar.read_bars(path, ("USDCOP",))
    macro_path = tmp_path / "macro.parquet"
    macro.drop(columns=["vix"]).to_parquet(macro_path, index=False)
    with pytest.raises(SchemaError, match="missing columns"):
        columnar.read_macro(macro_path)


def test_fallback_imports_no_pandas(
    tmp_path: Path, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    import subprocess
    import sys

    data_dir = _write(tmp_path, *frames)
    code = (
        "import sys; from pathlib import Path; import server.app, server.__main__;"
        "from server.fallback import compute_rows;"
        f"assert compute_rows(Path({str(data_dir)!r}), ('USDCOP',));"
        "print('pandas' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["False"]
