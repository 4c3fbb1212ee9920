"""The integration guide's Python inference API, as the guide names it (minus ``src.``).

What enters: a symbol (or Feast-style entity rows). What leaves: the 15 contract features as a
``{name: float}`` dict, from the observation server (the online store behind it) or, when the
server cannot be reached, from the canonical builder over the raw files in this process.

>>> from feature_store import get_features_with_fallback    # doctest: +SKIP
>>> get_features_with_fallback("USDCOP")["rsi_9"]             # doctest: +SKIP

Thin on purpose: every value comes from :mod:`client` or :mod:`canonical.builder`; this package
only gives them the guide's names (``feature_store.feast_service``, ``feature_store.builders``).
"""

from __future__ import annotations

from feature_store.builders import CanonicalFeatureBuilder, InferenceFeatureBuilder
from feature_store.fallback import get_features_with_fallback
from feature_store.feast_service import FeastInferenceService, FeastUnavailableError

__all__ = [
    "CanonicalFeatureBuilder",
    "FeastInferenceService",
    "FeastUnavailableError",
    "InferenceFeatureBuilder",
    "get_features_with_fallback",
]
