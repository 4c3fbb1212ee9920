"""Offline feature tables (L1 output): one parquet file per feature view.

What enters: validated-or-not bars and macro frames (all symbols) and the ``created`` time.
What leaves: per view of the contract, a frame with ``symbol``, ``event_timestamp``
(tz-aware UTC, bar open + 5 min), ``created`` (tz-aware UTC) and the view's features as
float32 -- the file sources of the Feast feature views, written atomically to
``data_dir/offline/<view>.parquet``. All symbols share the same three files.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from canonical.builder import CanonicalFeatureBuilder, FeatureRows
from canonical.contract import VIEWS, view_slice
from market_data.files import atomic_write
from market_data.schema import bars_from_frame, macro_from_frame, validate_bars, validate_macro

OFFLINE_DIR = "offline"


def offline_table_path(data_dir: Path, view_name: str) -> Path:
    """``data_dir/offline/<view_name>.parquet``."""
    return Path(data_dir) / OFFLINE_DIR / f"{view_name}.parquet"


def build_offline_tables(
    bars_df: pd.DataFrame,
    macro_df: pd.DataFrame,
    created: datetime,
    builder: CanonicalFeatureBuilder | None = None,
) -> dict[str, pd.DataFrame]:
    """Every emittable feature row of every symbol, split by view (view name -> frame).

    Rows are ordered by symbol, then event time. ``created`` must be tz-aware.
    """
    if created.tzinfo is None:
        raise ValueError("created must be tz-aware")
    builder = builder or CanonicalFeatureBuilder()
    bars_df = validate_bars(bars_df)
    macro = macro_from_frame(validate_macro(macro_df))
    symbols = sorted(bars_df["symbol"].unique())
    rows = [builder.batch(bars_from_frame(bars_df, s), macro) for s in symbols]
    return {
        view.name: _view_frame(rows, view_slice(view), view.features, created) for view in VIEWS
    }


def _view_frame(
    rows: list[FeatureRows], columns: slice, names: tuple[str, ...], created: datetime
) -> pd.DataFrame:
    symbol = np.concatenate([np.full(len(r), r.symbol, dtype=object) for r in rows])
    event_ns = np.concatenate([r.event_time_ns for r in rows])
    values = np.concatenate([r.values[:, columns] for r in rows]).astype(np.float32)
    frame = pd.DataFrame(
        {
            "symbol": pd.Series(symbol, dtype=object),
            "event_timestamp": pd.to_datetime(event_ns, utc=True).astype("datetime64[ns, UTC]"),
            "created": pd.Series(
                pd.Timestamp(created).tz_convert("UTC"), index=range(len(event_ns))
            ).astype("datetime64[ns, UTC]"),
        }
    )
    for i, name in enumerate(names):
        frame[name] = values[:, i]
    return frame


def _parquet_writer(frame: pd.DataFrame) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        frame.to_parquet(tmp, index=False)

    return write


def write_offline_tables(data_dir: Path, tables: dict[str, pd.DataFrame]) -> dict[str, Path]:
    """Write each view's frame atomically to :func:`offline_table_path`; return the paths."""
    paths = {}
    for view_name, frame in tables.items():
        path = offline_table_path(data_dir, view_name)
        atomic_write(path, _parquet_writer(frame))
        paths[view_name] = path
    return paths
