"""``get_features_with_fallback``: the guide's error-handling pattern, ready to call.

What enters: a symbol. What leaves: its 15 features as ``{name: float}``: from the observation
server when it answers, else (:class:`~feature_store.feast_service.FeastUnavailableError`, logged
as a warning) from the canonical builder over the raw files in this process.
"""

from __future__ import annotations

import logging

from feature_store.builders import CanonicalFeatureBuilder, InferenceFeatureBuilder
from feature_store.feast_service import FeastInferenceService, FeastUnavailableError

logger = logging.getLogger(__name__)


def get_features_with_fallback(
    symbol: str,
    *,
    service: FeastInferenceService | None = None,
    builder: InferenceFeatureBuilder | None = None,
) -> dict[str, float]:
    """The 15 features of ``symbol``; the server first, the in-process builder if it is down.

    >>> get_features_with_fallback("USDCOP")["log_ret_5m"]   # doctest: +SKIP
    """
    own = service is None
    service = service or FeastInferenceService()
    try:
        return service.get_online_features(entity_rows=[{"symbol": symbol}])
    except FeastUnavailableError as error:
        logger.warning("Feast unavailable: %s, using fallback", error)
        return (builder or CanonicalFeatureBuilder.for_inference()).build_features(symbol)
    finally:
        if own:
            service.close()
