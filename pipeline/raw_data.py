"""L0 of the pipeline: make sure raw market data exists, then load it.

What enters: the data folder, the injected ``now`` and the generator's parameters. What leaves:
the validated bars and macro frames (``data_dir/raw/usdcop_5m.parquet``, ``macro_daily.parquet``)
and whether they were generated on this call.

Files that exist are loaded as they are (so real data in the documented schema can be dropped in;
see market_data.schema). Missing files are generated, deterministically from the seed:
- bars: every session bar of the ``days`` calendar days ending at ``now``'s date whose close
  (open + 5 min) is at or before ``now`` -- the history follows the session calendar, so on a
  weekend it ends on Friday at 18:00 UTC;
- macro: one print per weekday from the builder's warm-up before the first bar up to the last
  weekday strictly before ``now``'s date (a day's print is known only after it closes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from market_data import files
from market_data.generator import generate_bars, generate_macro, macro_start_for
from market_data.session import BAR_MINUTES


@dataclass(frozen=True)
class RawData:
    """The raw market data the pipeline works on."""

    bars: pd.DataFrame
    """Validated 5-minute bars of every symbol (market_data.schema.BARS_COLUMNS)."""
    macro: pd.DataFrame
    """Validated daily macro prints (market_data.schema.MACRO_COLUMNS)."""
    generated: bool
    """True when this call generated (at least one of) the files."""


def ensure_raw_data(
    data_dir: Path,
    now: datetime,
    *,
    days: int,
    seed: int,
    symbols: Sequence[str],
) -> RawData:
    """Load ``data_dir/raw``'s files, generating whichever is missing (see the module docstring)."""
    if now.tzinfo is None:
        raise ValueError(f"now must be tz-aware (UTC), got naive {now!r}")
    bars_file, macro_file = files.bars_path(data_dir), files.macro_path(data_dir)
    generated = False
    end_day = pd.Timestamp(now).tz_convert("UTC").date()
    start_day = end_day - timedelta(days=days - 1)
    if not bars_file.exists():
        bars = generate_bars(symbols, start_day, end_day, seed)
        closed = bars["time"] + pd.Timedelta(minutes=BAR_MINUTES) <= pd.Timestamp(now)
        files.write_bars(bars_file, bars[closed].reset_index(drop=True))
        generated = True
    if not macro_file.exists():
        macro = generate_macro(macro_start_for(start_day), end_day - timedelta(days=1), seed)
        files.write_macro(macro_file, macro)
        generated = True
    return RawData(
        bars=files.read_bars(bars_file), macro=files.read_macro(macro_file), generated=generated
    )
