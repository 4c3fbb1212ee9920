"""The point-in-time join of training sets, computed here: Feast's rule, without Feast's engine.

What enters: the three offline feature tables (``symbol``, ``event_timestamp``, ``created`` and
the view's features; ``OfflineStore.read_feature_tables``, from the parquet files or the
PostgreSQL tables), symbols and entity timestamps. What leaves: a
:class:`~pipeline.training_set.TrainingSet` of complete rows.

The rule is Feast's ``get_historical_features`` through ``observation_15d`` (its file store's
``_filter_ttl`` and its postgres store's SQL agree): for an entity timestamp t, each view gives
its row with the greatest event time in ``[t - ttl, t]`` (both ends included); among rows with
that event time the one created last. A row where some view has none, or holds a NaN, is dropped
and counted. Tests hold the result bit for bit against Feast's own join on both stores.

Why not Feast's engine: its file store joins every entity row with every feature row of its
symbol before filtering (a week of 5-minute rows against a year of features took 176 s and 5 GB
here), its postgres SQL took 273 s for a year. The join itself is a binary search per view
(``numpy.searchsorted``) over tables sorted once: a year of 5-minute rows takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from canonical import contract
from pipeline.training_set import TrainingSet


def _ns(series: pd.Series) -> npt.NDArray[np.int64]:
    ns: npt.NDArray[np.int64] = (
        pd.DatetimeIndex(pd.to_datetime(series, utc=True)).as_unit("ns").asi8
    )
    return ns


def _view_rows(
    frame: pd.DataFrame, view: contract.FeatureView, symbol: str
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """(event times ns ascending, float32 values) of ``symbol`` in one table; equal event
    times ordered by ``created``, so the last of a run is the one created last."""
    rows = frame[frame["symbol"] == symbol]
    event_ns = _ns(rows["event_timestamp"])
    created_ns = _ns(rows["created"])
    order = np.lexsort((created_ns, event_ns))
    values = rows[list(view.features)].to_numpy(dtype=np.float32)
    return event_ns[order], np.ascontiguousarray(values[order])


def join(
    tables: Mapping[str, pd.DataFrame],
    symbols: Sequence[str],
    moments_ns: npt.NDArray[np.int64],
) -> TrainingSet:
    """Complete rows of every (symbol, moment), ordered by symbol then moment."""
    moments = np.sort(np.asarray(moments_ns, dtype=np.int64))
    values_parts: list[npt.NDArray[np.float32]] = []
    times_parts: list[npt.NDArray[np.int64]] = []
    symbol_parts: list[npt.NDArray[np.str_]] = []
    dropped = 0
    for symbol in symbols:
        out = np.empty((len(moments), contract.N_FEATURES), dtype=np.float32)
        complete = np.ones(len(moments), dtype=bool)
        for view in contract.VIEWS:
            event_ns, rows = _view_rows(tables[view.name], view, symbol)
            if len(event_ns) == 0:
                complete[:] = False
                continue
            at = np.searchsorted(event_ns, moments, side="right") - 1
            found = at >= 0
            picked = np.where(found, at, 0)
            ttl_ns = int(view.ttl.total_seconds()) * 10**9
            found &= event_ns[picked] >= moments - ttl_ns
            out[:, contract.view_slice(view)] = rows[picked]
            complete &= found
        complete &= ~np.isnan(out).any(axis=1)
        dropped += int((~complete).sum())
        values_parts.append(out[complete])
        times_parts.append(moments[complete])
        symbol_parts.append(np.full(int(complete.sum()), symbol))
    return TrainingSet(
        values=np.ascontiguousarray(np.concatenate(values_parts))
        if values_parts
        else np.empty((0, contract.N_FEATURES), dtype=np.float32),
        timestamps_ns=np.concatenate(times_parts) if times_parts else np.empty(0, np.int64),
        symbols=np.concatenate(symbol_parts) if symbol_parts else np.empty(0, dtype=str),
        dropped=dropped,
    )
