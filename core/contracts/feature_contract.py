"""CTR-FEATURE-001 under the guide's path (``src/core/contracts/feature_contract.py``).

What enters: nothing. What leaves: the same objects as :mod:`canonical.contract` (names, order,
views, TTLs, hash); it defines nothing of its own, so there is still one source of truth.
"""

from __future__ import annotations

from canonical.contract import (
    CONTRACT_HASH,
    CONTRACT_ID,
    FEATURE_NAMES,
    FEATURE_SERVICE,
    FEATURES,
    N_FEATURES,
    VIEWS,
)

__all__ = [
    "CONTRACT_HASH",
    "CONTRACT_ID",
    "FEATURES",
    "FEATURE_NAMES",
    "FEATURE_SERVICE",
    "N_FEATURES",
    "VIEWS",
]
