"""The latest observation as Feast's SDK reads it from the online store, and its named table.

What enters: a FeatureStore (materialized) and ``now``. What leaves: per symbol, the 15 values
of feature service ``observation_15d`` in contract order (float32; None where Redis holds none)
with each view's event time, and a printable table of them.

Feast's SDK does not enforce a view's TTL on online reads; the table does, against ``now``, so
a stale view shows as ``expired`` instead of passing for fresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from canonical import contract

if TYPE_CHECKING:
    from feast import FeatureStore

_TS_SUFFIX = "__ts"
"""Suffix Feast's OnlineResponse.to_dict(include_event_timestamps=True) gives event-time keys."""


@dataclass(frozen=True)
class ViewFreshness:
    """One feature view of an observation."""

    view: str
    event_time: datetime | None
    """Event time of the view's row in Redis; None when Redis holds none."""
    status: str
    """``fresh``, ``expired`` (older than the view's TTL at ``now``) or ``missing``."""


@dataclass(frozen=True)
class OnlineObservation:
    """What Feast's SDK returns for one symbol, in contract order."""

    symbol: str
    values: tuple[float | None, ...]
    """The 15 values in contract order, each a float32 widened to float (None: missing)."""
    views: tuple[ViewFreshness, ...]
    now: datetime
    """The time freshness was judged at."""

    def as_float32(self) -> np.ndarray:
        """Values as a float32 array (NaN where missing)."""
        return np.array([np.nan if v is None else v for v in self.values], dtype=np.float32)


def read_online_observation(store: FeatureStore, symbol: str, now: datetime) -> OnlineObservation:
    """``store.get_online_features`` for feature service ``observation_15d`` and ``symbol``."""
    service = store.get_feature_service(contract.FEATURE_SERVICE)
    response = store.get_online_features(
        features=service, entity_rows=[{contract.ENTITY: symbol}]
    ).to_dict(include_event_timestamps=True)
    values = tuple(_as_float(response[name][0]) for name in contract.FEATURE_NAMES)
    views = []
    for view in contract.VIEWS:
        present = [values[contract.FEATURE_INDEX[n]] is not None for n in view.features]
        seconds = response.get(view.features[0] + _TS_SUFFIX, [0])[0]
        event_time = datetime.fromtimestamp(seconds, UTC) if any(present) and seconds else None
        if event_time is None:
            status = "missing"
        elif now - event_time > view.ttl:
            status = "expired"
        else:
            status = "fresh"
        views.append(ViewFreshness(view=view.name, event_time=event_time, status=status))
    return OnlineObservation(symbol=symbol, values=values, views=tuple(views), now=now)


def format_observation(observation: OnlineObservation) -> str:
    """A named table: index, feature, value, view, and per view its event time and status."""
    by_view = {v.view: v for v in observation.views}
    lines = [
        f"{observation.symbol}  (Feast SDK, feature service {contract.FEATURE_SERVICE}, "
        f"{contract.CONTRACT_ID}; judged at {observation.now:%Y-%m-%d %H:%M:%S} UTC)",
        f"{'#':>2}  {'feature':<17} {'value':>14}  {'view':<19} {'event time (UTC)':<19} status",
    ]
    for feature, value in zip(contract.FEATURES, observation.values, strict=True):
        fresh = by_view[feature.view]
        shown = "-" if value is None else f"{value:.6g}"
        when = "-" if fresh.event_time is None else f"{fresh.event_time:%Y-%m-%d %H:%M:%S}"
        lines.append(
            f"{feature.index:>2}  {feature.name:<17} {shown:>14}  {feature.view:<19} "
            f"{when:<19} {fresh.status}"
        )
    return "\n".join(lines)


def _as_float(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"Feast returned a non-numeric feature value: {type(value).__name__}")
