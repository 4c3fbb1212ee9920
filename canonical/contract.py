"""Feature contract CTR-FEATURE-001: the single source of truth for the observation.

What enters: nothing. What leaves: the 15 features in canonical order, the feature view
each belongs to, its dtype, each view's TTL, each feature's validity range (``VALID_RANGES``),
and a stable hash over (names, order, views, dtypes) that clients compare against the server's.

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


@dataclass(frozen=True)
class ValidRange:
    """Closed interval a feature's value must lie in; anything else (or a non-finite number)
    is corrupt. Bounds are what the definitions allow, not what the data happened to show."""

    low: float
    high: float
    why: str
    """Why this range: the definition that bounds the feature."""


VALID_RANGES: dict[str, ValidRange] = {
    # ln(C_t / C_t-k): |x| <= 1 is a 2.7x move of USD/COP within 4 h, far beyond any recorded one.
    "log_ret_5m": ValidRange(-1.0, 1.0, "log return; |x| > 1 is a 2.7x move"),
    "log_ret_1h": ValidRange(-1.0, 1.0, "log return; |x| > 1 is a 2.7x move"),
    "log_ret_4h": ValidRange(-1.0, 1.0, "log return; |x| > 1 is a 2.7x move"),
    "rsi_9": ValidRange(0.0, 100.0, "RSI is bounded by definition"),
    "atr_pct": ValidRange(0.0, 1.0, "ATR / close: non-negative, a range above the price is absurd"),
    "adx_14": ValidRange(0.0, 100.0, "ADX is bounded by definition"),
    # Population z-score of the last of n = 60 values: |z| <= sqrt(n - 1) ~ 7.68, always.
    "dxy_z": ValidRange(-8.0, 8.0, "z-score of the last of 60 values: |z| <= sqrt(59)"),
    "dxy_change_1d": ValidRange(-1.0, 1.0, "daily relative change; a price cannot fall below 0"),
    "vix_z": ValidRange(-8.0, 8.0, "z-score of the last of 60 values: |z| <= sqrt(59)"),
    "embi_z": ValidRange(-8.0, 8.0, "z-score of the last of 60 values: |z| <= sqrt(59)"),
    "brent_change_1d": ValidRange(-1.0, 1.0, "daily relative change; a price cannot fall below 0"),
    "rate_spread": ValidRange(-50.0, 50.0, "policy rate difference, percentage points"),
    "usdmxn_change_1d": ValidRange(-1.0, 1.0, "daily relative change; a price cannot fall below 0"),
    "position": ValidRange(-1.0, 1.0, "position is a fraction of the allowed exposure"),
    "time_normalized": ValidRange(0.0, 1.0, "session time, clipped to [0, 1]"),
}
"""Validity range of every feature (the server rejects stored values outside them)."""

FEATURE_BOUNDS: tuple[tuple[float, float], ...] = tuple(
    (VALID_RANGES[name].low, VALID_RANGES[name].high) for name in FEATURE_NAMES
)
"""(low, high) per feature, in contract order."""


def out_of_range(names: tuple[str, ...], values: tuple[float, ...]) -> str | None:
    """The first of ``names`` whose value is not finite or outside its range, else None."""
    for name, value in zip(names, values, strict=True):
        bounds = VALID_RANGES[name]
        # NaN fails both comparisons; +-inf fails one of them.
        if not bounds.low <= value <= bounds.high:
            return name
    return None


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
assert set(VALID_RANGES) == set(FEATURE_NAMES), "every feature has exactly one validity range"
