"""Logic shared by the sync and async clients: channel options, retries, contract checks.

What enters: a target (or a caller's channel), a deadline, the expected contract hash.
What leaves: request protos, validated :class:`~client._result.ObservationResult` objects,
and the channel options (retry policy declared in the gRPC service config).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from usdcop.observation.v1 import observation_pb2 as pb

from canonical.contract import CONTRACT_HASH
from client._errors import ContractMismatch

DEFAULT_TARGET = "127.0.0.1:50051"
"""Where the client connects when no target is given (the server's default port)."""

DEFAULT_TIMEOUT_S = 1.0
"""Deadline of every call, retries included, in seconds."""

SERVICE_NAME = "usdcop.observation.v1.ObservationService"

RETRY_MAX_ATTEMPTS = 5
"""Attempts per call (first try + 4 retries), all within the call's deadline."""

# Retries live in the gRPC service config, so grpc-core applies them per attempt and keeps
# them within the call's single deadline (grpc draws each back-off uniformly in
# [0, 50 ms * 2^n], so four retries span ~0.4 s on average). UNAVAILABLE and
# RESOURCE_EXHAUSTED are retried: the server returns them when nothing was answered or written
# (RESOURCE_EXHAUSTED: at its bound on concurrent calls), the channel returns UNAVAILABLE while
# connecting.
SERVICE_CONFIG: dict[str, Any] = {
    "methodConfig": [
        {
            "name": [{"service": SERVICE_NAME}],
            "retryPolicy": {
                "maxAttempts": RETRY_MAX_ATTEMPTS,
                "initialBackoff": "0.05s",
                "maxBackoff": "0.4s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"],
            },
        }
    ]
}


def channel_options(extra: tuple[tuple[str, Any], ...] = ()) -> list[tuple[str, Any]]:
    """Options of a channel the client creates: retries on, short reconnect back-off.

    gRPC's default reconnect back-off starts at 1 s, longer than the default deadline, so a
    server that restarts would fail every call for a second; 50-500 ms keeps retries useful.
    """
    return [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
        ("grpc.initial_reconnect_backoff_ms", 50),
        ("grpc.min_reconnect_backoff_ms", 50),
        ("grpc.max_reconnect_backoff_ms", 500),
        *extra,
    ]


def to_timestamp(when: datetime) -> Timestamp:
    """A tz-aware datetime as a protobuf Timestamp (naive datetimes are refused)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("event_time must be timezone-aware (e.g. datetime.now(UTC))")
    ts = Timestamp()
    ts.FromDatetime(when.astimezone(UTC))
    return ts


class BaseClient:
    """State and checks shared by ObservationClient and AsyncObservationClient."""

    def __init__(
        self,
        target: str | None,
        *,
        channel_given: bool,
        timeout_s: float,
        check_contract: bool,
        expected_hash: str | None,
    ) -> None:
        if not (timeout_s > 0 and math.isfinite(timeout_s)):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        if channel_given and target is not None:
            raise ValueError("pass either target or channel, not both")
        self.target = (target or DEFAULT_TARGET) if not channel_given else "<caller's channel>"
        """The server address (or a marker when the caller passed a channel)."""
        self.timeout_s = timeout_s
        """Deadline of every call, in seconds."""
        self.expected_hash = expected_hash or CONTRACT_HASH
        """The contract hash this client accepts."""
        self._check_contract = check_contract
        self._owns_channel = not channel_given
        self._contract_checked = not check_contract

    @property
    def _hash_to_enforce(self) -> str | None:
        return self.expected_hash if self._check_contract else None

    def _verify_contract(self, contract: pb.ObservationContract) -> None:
        if contract.contract_hash != self.expected_hash:
            raise ContractMismatch(self.expected_hash, contract.contract_hash, contract.contract_id)
        self._contract_checked = True

    @staticmethod
    def _push_request(
        symbol: str, position: float, event_time: datetime | None
    ) -> pb.PushStateRequest:
        when = event_time if event_time is not None else datetime.now(UTC)
        return pb.PushStateRequest(symbol=symbol, position=position, event_time=to_timestamp(when))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target!r}, timeout_s={self.timeout_s})"


def batch_request(symbols: list[str] | tuple[str, ...]) -> pb.GetObservationsRequest:
    """GetObservations' request (a str alone is refused: it would be split into letters)."""
    if isinstance(symbols, str):
        raise TypeError("symbols must be a list of symbols, not one string")
    return pb.GetObservationsRequest(symbols=list(symbols))
