"""Feature contract CTR-FEATURE-001: the single source of truth for the observation.

What enters: nothing. What leaves: the 15 features in canonical order, the feature view
each belongs to, its dtype, each view's TTL, and a stable hash over (names, order, views,
dtypes) that clients compare against the server's.

Every other module derives from these tuples: the Feast definitions
(``feature_repo/features.py``), the offline tables, the server's Redis read plan, the
compute fallback, the proto's ``DescribeObservation`` answer and the tests. No other file
repeats the list.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

CONTRACT_ID = "CTR-FEATURE-001"
"""Identifier of this contract, reported by the server next to its hash."""

PROJECT = "usdcop_trading"
"""Feast project name; part of every Redis key Feast writes."""

ENTITY = "symbol"
"""Feast entity (join key) name; its value is the traded symbol, e.g. ``USDCOP``."""

FEATURE_SERVICE = "observation_15d"
"""Feast feature service that returns the 15 features in contract order."""

DTYPE = "float32"
"""Every feature is stored, served and consumed as IEEE-754 float32."""


@dataclass(frozen=True)
class FeatureView:
    """One Feast feature view of the contract."""

    name: str
    """Feast feature view name (also the Redis field prefix)."""
    ttl: timedelta
    """A value whose event time is older than this is expired."""
    features: tuple[str, ...]
    """Feature names of this view, in contract order."""


@dataclass(frozen=True)
class Feature:
    """One feature of the observation vector."""

    index: int
    """Position in the observation vector (0-based)."""
    name: str
    """Feature name, unique across the contract."""
    view: str
    """Name of the feature view that holds it."""
    dtype: str = DTYPE
    """Storage and wire dtype."""


TECHNICAL = FeatureView(
    name="technical_features",
    ttl=timedelta(hours=24),
    features=("log_ret_5m", "log_ret_1h", "log_ret_4h", "rsi_9", "atr_pct", "adx_14"),
)
MACRO = FeatureView(
    name="macro_features",
    ttl=timedelta(hours=24),
    features=(
        "dxy_z",
        "dxy_change_1d",
        "vix_z",
        "embi_z",
        "brent_change_1d",
        "rate_spread",
        "usdmxn_change_1d",
    ),
)
STATE = FeatureView(
    name="state_features",
    ttl=timedelta(hours=1),
    features=("position", "time_normalized"),
)

VIEWS: tuple[FeatureView, ...] = (TECHNICAL, MACRO, STATE)
"""The feature views, in the order their features appear in the observation."""

FEATURES: tuple[Feature, ...] = tuple(
    Feature(index=i, name=name, view=view.name)
    for i, (view, name) in enumerate((v, n) for v in VIEWS for n in v.features)
)
"""The 15 features in canonical order."""

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
N_FEATURES = len(FEATURES)
VIEW_BY_NAME: dict[str, FeatureView] = {v.name: v for v in VIEWS}
FEATURE_INDEX: dict[str, int] = {f.name: f.index for f in FEATURES}


def view_slice(view: FeatureView) -> slice:
    """Slice of the observation vector that holds ``view``'s features."""
    start = FEATURE_INDEX[view.features[0]]
    return slice(start, start + len(view.features))


def _contract_hash() -> str:
    # Canonical JSON (sorted keys, no whitespace) so any language can recompute it:
    # sha256 over [{"name","view","dtype"}, ...] in contract order.
    payload = [{"name": f.name, "view": f.view, "dtype": f.dtype} for f in FEATURES]
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


CONTRACT_HASH = _contract_hash()
"""sha256 (hex) of the canonical JSON of (name, view, dtype) in contract order."""

assert N_FEATURES == 15, "CTR-FEATURE-001 has exactly 15 features"
assert len(set(FEATURE_NAMES)) == N_FEATURES, "feature names must be unique"
