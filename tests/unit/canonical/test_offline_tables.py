"""Offline tables: one frame per view, all symbols, float32 features equal to the builder's."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from canonical.builder import CanonicalFeatureBuilder
from canonical.contract import VIEWS, view_slice
from canonical.offline_tables import (
    build_offline_tables,
    offline_table_path,
    write_offline_tables,
)
from market_data.generator import generate_bars, generate_macro
from market_data.schema import bars_from_frame, macro_from_frame, validate_macro

CREATED = datetime(2026, 1, 2, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    end = date(2025, 6, 30)
    bars = generate_bars(("USDMXN", "USDCOP"), start=end - timedelta(days=40), end=end, seed=3)
    return bars, generate_macro(end=end, seed=3)


def test_tables_have_the_contract_columns_and_builder_values(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    bars_df, macro_df = frames
    tables = build_offline_tables(bars_df, macro_df, CREATED)
    assert list(tables) == [v.name for v in VIEWS]
    macro = macro_from_frame(validate_macro(macro_df))
    builder = CanonicalFeatureBuilder()
    expected = {s: builder.batch(bars_from_frame(bars_df, s), macro) for s in ("USDCOP", "USDMXN")}
    total = sum(len(r) for r in expected.values())
    assert total > 1000
    for view in VIEWS:
        frame = tables[view.name]
        extra = ["synthetic"] if view.name == "state_features" else []
        assert list(frame.columns) == [
            "symbol",
            "event_timestamp",
            "created",
            *view.features,
            *extra,
        ]
        assert len(frame) == total
        assert str(frame["event_timestamp"].dtype) == "datetime64[ns, UTC]"
        assert str(frame["created"].dtype) == "datetime64[ns, UTC]"
        assert (frame["created"] == pd.Timestamp(CREATED)).all()
        assert all(frame[f].dtype == np.float32 for f in view.features)
        assert list(frame["symbol"].unique()) == ["USDCOP", "USDMXN"]
        for symbol, rows in expected.items():
            part = frame[frame["symbol"] == symbol]
            got_ns = pd.DatetimeIndex(part["event_timestamp"]).as_unit("ns").asi8
            np.testing.assert_array_equal(got_ns, rows.event_time_ns)
            values = part[list(view.features)].to_numpy()
            assert np.array_equal(values, rows.values[:, view_slice(view)])


def test_write_is_atomic_and_round_trips(
    tmp_path: Path, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    tables = build_offline_tables(*frames, CREATED)
    paths = write_offline_tables(tmp_path, tables)
    assert paths["state_features"] == tmp_path / "offline" / "state_features.parquet"
    assert sorted(p.name for p in (tmp_path / "offline").iterdir()) == sorted(
        f"{v.name}.parquet" for v in VIEWS
    )  # no temporary files left behind
    for view in VIEWS:
        back = pd.read_parquet(offline_table_path(tmp_path, view.name))
        pd.testing.assert_frame_equal(back, tables[view.name])


def test_created_must_be_tz_aware(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        build_offline_tables(*frames, datetime(2026, 1, 2))
