"""``FeastInferenceService``: the guide's online-feature call, answered by the observation server.

What enters: entity rows ``[{"symbol": "USDCOP"}]`` (or a bare symbol) and the feature service
name. What leaves: the 15 features of ``observation_15d`` as ``{name: float}`` (one row) or
``{name: [float, ...]}`` (several rows, Feast's ``to_dict()`` shape), in contract order; each
float is the served float32 exactly.

The server reads Feast's Redis hashes itself (and enforces each view's TTL, which Feast's SDK
does not), so this class never imports Feast. With no target it reaches the server named by
``USDCOP_TARGET`` (default ``127.0.0.1:50051``).

Exceptions::

    Exception
     └── FeastUnavailableError   the server could not answer (unreachable, overloaded, deadline)
    ValueError                   unknown feature service, malformed entity rows, bad symbol
    KeyError                     a symbol the server does not serve
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import grpc

from canonical.contract import FEATURE_NAMES, FEATURE_SERVICE
from client import ObservationClient, ObservationRpcError
from client._base import DEFAULT_TARGET, DEFAULT_TIMEOUT_S

TARGET_ENV = "USDCOP_TARGET"
"""Environment variable naming the observation server (``host:port``)."""

_UNAVAILABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
    }
)


class FeastUnavailableError(Exception):
    """The online features could not be served (server unreachable, overloaded or too slow):
    the caller's cue to fall back to :class:`feature_store.builders.CanonicalFeatureBuilder`."""


def _symbols(entity_rows: object) -> list[str]:
    if isinstance(entity_rows, str):
        return [entity_rows]
    if not isinstance(entity_rows, Sequence) or not entity_rows:
        raise ValueError('entity_rows must be a symbol or a non-empty list like [{"symbol": ...}]')
    symbols = []
    for row in entity_rows:
        if not isinstance(row, Mapping) or not isinstance(row.get("symbol"), str):
            raise ValueError(f'each entity row must be {{"symbol": <str>}}, got {row!r}')
        symbols.append(row["symbol"])
    return symbols


class FeastInferenceService:
    """Online features of ``observation_15d`` for inference.

    >>> service = FeastInferenceService()                           # doctest: +SKIP
    >>> service.get_online_features(entity_rows=[{"symbol": "USDCOP"}],
    ...                             feature_service="observation_15d")["rsi_9"]  # doctest: +SKIP
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        client: ObservationClient | None = None,
    ) -> None:
        self.target = target or os.environ.get(TARGET_ENV) or DEFAULT_TARGET
        self._client = client or ObservationClient(self.target, timeout_s=timeout_s)
        self._owns_client = client is None

    def get_online_features(
        self,
        entity_rows: object = None,
        feature_service: object = FEATURE_SERVICE,
        **_feast_options: Any,
    ) -> dict[str, Any]:
        """The 15 features per entity row, as the guide documents.

        ``entity_rows`` is ``[{"symbol": "USDCOP"}, ...]`` or a bare symbol; ``None`` (or the
        guide's literal ``...``) means ``USDCOP``. Feast's other keyword options (e.g.
        ``full_feature_names``) are accepted and have no effect.
        """
        if entity_rows is None or entity_rows is Ellipsis:
            entity_rows = [{"symbol": "USDCOP"}]
        if feature_service is Ellipsis:
            feature_service = FEATURE_SERVICE
        if feature_service != FEATURE_SERVICE:
            raise ValueError(
                f"unknown feature service {feature_service!r}:"
                f" this server serves {FEATURE_SERVICE!r}"
            )
        rows = [self._row(symbol) for symbol in _symbols(entity_rows)]
        if len(rows) == 1:
            return rows[0]
        return {name: [row[name] for row in rows] for name in FEATURE_NAMES}

    def _row(self, symbol: str) -> dict[str, float]:
        try:
            result = self._client.get(symbol)
        except ObservationRpcError as error:
            if error.code in _UNAVAILABLE:
                raise FeastUnavailableError(
                    f"observation server {self.target}: {error.code.name}: {error.details}"
                ) from None
            if error.code == grpc.StatusCode.NOT_FOUND:
                raise KeyError(symbol) from None
            raise ValueError(f"{error.code.name}: {error.details}") from None
        return {
            name: float(value) for name, value in zip(FEATURE_NAMES, result.values, strict=True)
        }

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> FeastInferenceService:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
