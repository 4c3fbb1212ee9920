"""Training sets: rows, grid and files; and Feast's own point-in-time join, the reference.

The command joins with :mod:`pipeline.point_in_time` (the same rule, seconds instead of minutes);
:func:`build_training_set` runs Feast's ``get_historical_features`` and stays as the reference
the tests hold that join against.

What enters: an applied Feast repository (either offline store), symbols and the entity
timestamps (a grid from ``--start`` to ``--end`` every ``--every``, or any explicit list).
What leaves: a :class:`TrainingSet` -- float32 values (N, 15) in contract order
(``canonical.contract``), their timestamps and symbols -- and files: ``.parquet`` (one column
per feature, plus ``symbol`` and ``event_timestamp``), ``.npz`` (``values``, ``timestamps_ns``,
``symbols``, ``feature_names``) or ``.npy`` (the values, with ``<name>.timestamps.npy`` beside
it; one symbol only).

Point in time: for an entity timestamp t, each view contributes its latest row with event time
<= t and > t - TTL (Feast's ``get_historical_features``), so no value from after t can appear.
A row where some view has no such row (outside the session, past a TTL) is dropped and counted:
the model never trains on a partial observation.

Long ranges are queried in chunks of entity rows, with a progress bar.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from canonical import contract

if TYPE_CHECKING:
    from feast import FeatureStore

CHUNK_ROWS = {"postgres": 20_000, "file": 2_000}
"""Entity rows per get_historical_features call, per offline store. Feast's file store joins
each entity row with every feature row of its symbol before filtering by time (memory grows
with their product: 2 016 rows of a 5-minute week against a year of features took 176 s and
5 GB here, 20 000 rows were killed at 20 GB); its postgres store filters in SQL."""
_DURATION = re.compile(r"(\d+)\s*(s|m|h|d)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class TrainingSet:
    """Rows of complete observations, ordered by symbol then time."""

    values: npt.NDArray[np.float32]
    """(N, 15) float32, contract order."""
    timestamps_ns: npt.NDArray[np.int64]
    """(N,) entity timestamps, Unix ns UTC."""
    symbols: npt.NDArray[np.str_]
    """(N,) symbol of each row."""
    dropped: int
    """Entity rows dropped because some view had no value within its TTL."""


def concatenate(parts: Sequence[TrainingSet]) -> TrainingSet:
    """The rows of ``parts`` one after the other (e.g. one part per symbol)."""
    if not parts:
        raise ValueError("no training-set parts to concatenate")
    return TrainingSet(
        values=np.ascontiguousarray(np.concatenate([p.values for p in parts])),
        timestamps_ns=np.concatenate([p.timestamps_ns for p in parts]),
        symbols=np.concatenate([p.symbols for p in parts]),
        dropped=sum(p.dropped for p in parts),
    )


def parse_every(text: str) -> timedelta:
    """``5m``, ``1h``, ``30s``, ``1d`` -> timedelta (must be positive)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise ValueError(f"--every {text!r}: use a positive duration such as 5m, 1h, 30s, 1d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


BAR = timedelta(minutes=5)
"""The bar length: grid times fall on bar boundaries (a bar's close, when its row is known)."""


def grid(start: datetime, end: datetime, every: timedelta) -> pd.DatetimeIndex:
    """Timestamps from ``start`` (moved up to the next bar boundary, so 10:26:32 gives 10:30)
    to ``end`` inclusive, every ``every`` (tz-aware UTC)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be tz-aware (UTC)")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    aligned = pd.Timestamp(start).tz_convert("UTC").ceil(BAR)
    if aligned > end:
        raise ValueError(f"no bar boundary between {start} and {end}")
    return pd.date_range(aligned, end, freq=every, tz="UTC")


def build_training_set(
    store: FeatureStore,
    symbols: Sequence[str],
    timestamps: Sequence[datetime] | pd.DatetimeIndex,
    *,
    chunk_rows: int | None = None,
    progress: bool = False,
) -> TrainingSet:
    """Point-in-time features of every (symbol, timestamp) pair, complete rows only."""
    from tqdm import tqdm

    service = store.get_feature_service(contract.FEATURE_SERVICE)
    if chunk_rows is None:
        chunk_rows = CHUNK_ROWS.get(str(store.config.offline_store.type), min(CHUNK_ROWS.values()))
    moments = pd.DatetimeIndex(pd.to_datetime(list(timestamps), utc=True))
    entity = pd.DataFrame(
        {
            contract.ENTITY: np.repeat(np.asarray(symbols, dtype=object), len(moments)),
            "event_timestamp": np.tile(moments.to_numpy(), len(symbols)),
        }
    )
    entity["event_timestamp"] = pd.to_datetime(entity["event_timestamp"], utc=True)
    names = list(contract.FEATURE_NAMES)
    parts: list[pd.DataFrame] = []
    with tqdm(total=len(entity), unit="rows", disable=not progress, desc="training set") as bar:
        for begin in range(0, len(entity), chunk_rows):
            chunk = entity.iloc[begin : begin + chunk_rows]
            frame = store.get_historical_features(entity_df=chunk, features=service).to_df()
            parts.append(frame[[contract.ENTITY, "event_timestamp", *names]])
            bar.update(len(chunk))
    joined = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=names)
    joined["event_timestamp"] = pd.to_datetime(joined["event_timestamp"], utc=True)
    joined = joined.sort_values([contract.ENTITY, "event_timestamp"], kind="stable")
    complete = joined[names].notna().all(axis=1)
    kept = joined[complete]
    values = kept[names].to_numpy(dtype=np.float64).astype(np.float32)
    return TrainingSet(
        values=np.ascontiguousarray(values),
        timestamps_ns=pd.DatetimeIndex(kept["event_timestamp"]).as_unit("ns").asi8.copy(),
        symbols=kept[contract.ENTITY].to_numpy(dtype=str),
        # Feast's file store leaves out rows its postgres store returns as nulls: count both.
        dropped=len(entity) - len(kept),
    )


def write_training_set(path: Path, training: TrainingSet) -> Path:
    """Write by extension: .parquet, .npz or .npy (see the module docstring). Each file is
    written beside its target and renamed into place: a failure leaves no partial file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".npz", ".npy"):
        raise ValueError(f"{path}: unsupported format {suffix!r}; use .parquet, .npz or .npy")
    if suffix == ".npy" and len(set(training.symbols.tolist())) > 1:
        raise ValueError(".npy holds one symbol's rows: use .npz or .parquet for several")
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.stem}.partial{suffix}")
    try:
        _write(staged, suffix, training)
        if suffix == ".npy":
            os.replace(staged.with_suffix(".timestamps.npy"), path.with_suffix(".timestamps.npy"))
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)
        staged.with_suffix(".timestamps.npy").unlink(missing_ok=True)
    return path


def _write(path: Path, suffix: str, training: TrainingSet) -> None:
    if suffix == ".parquet":
        frame = pd.DataFrame(
            {
                contract.ENTITY: training.symbols.astype(object),
                "event_timestamp": pd.to_datetime(training.timestamps_ns, utc=True),
            }
        )
        for i, name in enumerate(contract.FEATURE_NAMES):
            frame[name] = training.values[:, i]
        frame.to_parquet(path, index=False)
    elif suffix == ".npz":
        with path.open("wb") as out:
            np.savez(
                out,
                values=training.values,
                timestamps_ns=training.timestamps_ns,
                symbols=training.symbols,
                feature_names=np.asarray(contract.FEATURE_NAMES),
            )
    else:
        with path.open("wb") as out:
            np.save(out, training.values)
        with path.with_suffix(".timestamps.npy").open("wb") as out:
            np.save(out, training.timestamps_ns)
