"""The L1 rows both stores compute the same way: the rows of new bars, and which state rows a
re-derivation changed.

What enters: the raw bars and macro frames, a ``created`` time and each symbol's latest stored
event time; or a stored state table and the one re-derived from the recorded pushes. What
leaves: the L1 tables of the new bars only (``canonical.offline_tables`` layout), computed from
the trailing ``min_bars`` window (batch and latest window are the same function, bit for bit),
and the mask of state rows whose position or ``synthetic`` flag changed.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from canonical.builder import CanonicalFeatureBuilder
from canonical.offline_tables import build_offline_tables
from market_data.session import BAR_MINUTES


def rows_after(
    bars: pd.DataFrame,
    macro: pd.DataFrame,
    created: datetime,
    last_event: pd.Series,
    builder: CanonicalFeatureBuilder | None = None,
) -> dict[str, pd.DataFrame] | None:
    """The L1 rows of every bar whose event time is after its symbol's ``last_event`` (symbol ->
    latest stored event time), computed from the trailing ``min_bars`` window only; None when
    there are no such bars. Rows at or before ``last_event`` may be included (callers filter or
    upsert them)."""
    builder = builder or CanonicalFeatureBuilder()
    bar_end = bars["time"] + pd.Timedelta(minutes=BAR_MINUTES)
    tails = []
    for symbol, group in bars.groupby("symbol", sort=True):
        seen = last_event.get(symbol)
        new_count = int((bar_end[group.index] > seen).sum()) if seen is not None else len(group)
        if new_count:
            tails.append(group.iloc[-(builder.min_bars + new_count) :])
    if not tails:
        return None
    return build_offline_tables(pd.concat(tails, ignore_index=True), macro, created, builder)


def state_changed(stored: pd.DataFrame, derived: pd.DataFrame) -> pd.Series:
    """Per stored state row: did its position or ``synthetic`` flag change."""
    position = stored["position"].to_numpy() != derived["position"].to_numpy()
    before = stored["synthetic"].to_numpy() if "synthetic" in stored else True
    synthetic = before != derived["synthetic"].to_numpy()
    return pd.Series(position | synthetic, index=stored.index)
