"""Client of ObservationService: what the RL agent imports.

What enters: a symbol. What leaves: the 15-feature observation as a read-only numpy
float32 array in contract order (``canonical.contract.FEATURE_NAMES``), with where each
feature view's values came from (online store or compute fallback) and their freshness.

>>> from client import ObservationClient
>>> with ObservationClient("127.0.0.1:50051") as obs:     # doctest: +SKIP
...     values = obs.get("USDCOP").values                # np.float32, shape (15,)

Importing this package stays light: grpc, protobuf, numpy and the contract module; never
Feast, pandas or redis.
"""

from __future__ import annotations

from client._base import DEFAULT_TARGET, DEFAULT_TIMEOUT_S, SERVICE_CONFIG
from client._batch import BatchError
from client._errors import (
    ContractMismatch,
    MalformedObservation,
    ObservationClientError,
    ObservationRpcError,
)
from client._result import ObservationResult, ViewInfo
from client._tls import ClientTls
from client.aio import AsyncObservationClient
from client.sync import ObservationClient

__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT_S",
    "SERVICE_CONFIG",
    "AsyncObservationClient",
    "BatchError",
    "ClientTls",
    "ContractMismatch",
    "MalformedObservation",
    "ObservationClient",
    "ObservationClientError",
    "ObservationResult",
    "ObservationRpcError",
    "ViewInfo",
]
