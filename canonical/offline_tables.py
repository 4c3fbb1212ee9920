"""Offline feature tables (L1 output): one parquet file per feature view.

What enters: validated-or-not bars and macro frames (all symbols) and the ``created`` time.
What leaves: per view of the contract, a frame with ``symbol``, ``event_timestamp``
(tz-aware UTC, bar open + 5 min), ``created`` (tz-aware UTC) and the view's features as
float32, and for the state view a ``synthetic`` flag (True: the position is the generator's
rule; :func:`apply_state_events` replaces it with the agent's pushed positions,
``canonical.state_events``) -- the file sources of the Feast feature views, written atomically
to ``data_dir/offline/<view>.parquet``. All symbols share the same three files.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from canonical.builder import CanonicalFeatureBuilder, FeatureRows
from canonical.contract import STATE, VIEWS, view_slice
from canonical.state_events import SYNTHETIC, StateEvent
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
    if names == STATE.features:
        frame[SYNTHETIC] = True
    return frame


def offline_columns(view_name: str) -> tuple[str, ...]:
    """A view table's columns beyond the keys, ``created`` and the features."""
    return (SYNTHETIC,) if view_name == STATE.name else ()


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


def events_frame(events: list[StateEvent]) -> pd.DataFrame:
    """Events as the offline table's frame (float32 values, tz-aware UTC event times)."""
    return pd.DataFrame(
        {
            "symbol": pd.Series([e.symbol for e in events], dtype=object),
            "event_timestamp": pd.to_datetime(
                [e.event_time_ns for e in events], utc=True, unit="ns"
            ).astype("datetime64[ns, UTC]"),
            "position": np.array([e.position for e in events], dtype=np.float32),
            "time_normalized": np.array([e.time_normalized for e in events], dtype=np.float32),
        }
    )


def apply_state_events(state: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """``state`` (the state view's rows) with each row's position taken from the latest event
    of its symbol at or before its event time, and ``synthetic`` False there; rows with no such
    event are returned unchanged. Row order and every other column are kept."""
    out = state.copy()
    if SYNTHETIC not in out.columns:
        out[SYNTHETIC] = True
    if events.empty or out.empty:
        return out
    left = pd.DataFrame(
        {
            "row": np.arange(len(out)),
            "symbol": out["symbol"].to_numpy(),
            "event_timestamp": out["event_timestamp"].to_numpy(),
        }
    ).sort_values("event_timestamp", kind="stable")
    right = (
        events[["symbol", "event_timestamp", "position"]]
        .rename(columns={"position": "_pushed"})
        .sort_values("event_timestamp", kind="stable")
    )
    right = right.assign(event_timestamp=right["event_timestamp"].to_numpy())
    joined = pd.merge_asof(
        left, right, on="event_timestamp", by="symbol", direction="backward"
    ).sort_values("row")
    pushed = joined["_pushed"].to_numpy()
    matched = ~np.isnan(pushed)
    position = out["position"].to_numpy(dtype=np.float32).copy()
    position[matched] = pushed[matched].astype(np.float32)
    out["position"] = position
    synthetic = out[SYNTHETIC].to_numpy(dtype=bool).copy()
    synthetic[matched] = False
    out[SYNTHETIC] = synthetic
    return out
