"""The Redis read plan: every key and field byte the request path needs, computed at start-up.

What enters: the contract (views, features, order), the configured symbols and Feast project.
What leaves: per symbol, one ``ReadPlan`` (the entity key and the 18 HMGET fields: 15 feature
fields in contract order, then one ``_ts:<view>`` per view), and the ``ViewLayout`` that says
which reply slots belong to which view.
"""

from __future__ import annotations

from dataclasses import dataclass

from canonical import contract
from online_store import feast_layout


@dataclass(frozen=True)
class ViewLayout:
    """Where one feature view sits in the HMGET reply and in the observation vector."""

    name: str
    """Feature view name."""
    ttl_ns: int
    """Values whose event time is older than this (ns) are expired."""
    feature_slots: slice
    """Slots of the view's features in the reply, which equal their observation indices."""
    ts_slot: int
    """Slot of the view's ``_ts`` field in the reply."""


@dataclass(frozen=True)
class ReadPlan:
    """One HMGET: ``HMGET key *fields`` reads a symbol's whole observation."""

    symbol: str
    key: bytes
    """Feast's Redis key of the entity."""
    fields: tuple[bytes, ...]
    """15 feature fields in contract order, then the views' ``_ts`` fields in view order."""


def _view_layouts() -> tuple[ViewLayout, ...]:
    return tuple(
        ViewLayout(
            name=view.name,
            ttl_ns=int(view.ttl.total_seconds()) * 1_000_000_000,
            feature_slots=contract.view_slice(view),
            ts_slot=contract.N_FEATURES + position,
        )
        for position, view in enumerate(contract.VIEWS)
    )


VIEW_LAYOUTS: tuple[ViewLayout, ...] = _view_layouts()
"""The contract's views, in order, with their reply slots."""


def read_plan(symbol: str, project: str) -> ReadPlan:
    """The read plan of one symbol (key and field bytes equal Feast's)."""
    feature_fields = tuple(
        feast_layout.feature_field(feature.view, feature.name) for feature in contract.FEATURES
    )
    ts_fields = tuple(feast_layout.ts_field(view.name) for view in contract.VIEWS)
    return ReadPlan(
        symbol=symbol,
        key=feast_layout.entity_key(symbol, project),
        fields=feature_fields + ts_fields,
    )


def read_plans(symbols: tuple[str, ...], project: str) -> dict[str, ReadPlan]:
    """Read plans of every served symbol, keyed by symbol."""
    return {symbol: read_plan(symbol, project) for symbol in symbols}
