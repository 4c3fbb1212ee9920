"""Errors raised by the observation client.

Exception tree::

    ObservationClientError            base of every error this package raises
    ├── ObservationRpcError           the call failed with a gRPC status (``.code``, ``.details``)
    ├── ContractMismatch              the server serves another feature contract than this client
    └── MalformedObservation          the server's answer breaks the contract (e.g. not 15 values)
"""

from __future__ import annotations

import grpc


class ObservationClientError(Exception):
    """Base class of every error raised by :mod:`client`."""


class ObservationRpcError(ObservationClientError):
    """A call failed with a gRPC status, after the channel's retries and within the deadline.

    >>> err = ObservationRpcError(grpc.StatusCode.UNAVAILABLE, "no server")
    >>> str(err)
    'UNAVAILABLE: no server'
    """

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        """The gRPC status code."""
        self.details = details
        """The server's (or the channel's) message."""
        super().__init__(f"{code.name}: {details}")

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> ObservationRpcError:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else None
        return cls(code or grpc.StatusCode.UNKNOWN, details or "no details")


class ContractMismatch(ObservationClientError):  # noqa: N818 (named in the spec)
    """The server's feature contract hash differs from the one this client expects.

    Feeding an agent features in another order or of other views silently corrupts its
    decisions, so the client refuses to return values until the two sides agree.

    >>> str(ContractMismatch(expected="aa", served="bb"))[:34]
    'feature contract mismatch: client '
    """

    def __init__(self, expected: str, served: str, contract_id: str = "") -> None:
        self.expected = expected
        """The hash this client was built for (canonical.contract.CONTRACT_HASH by default)."""
        self.served = served
        """The hash the server reported."""
        label = f" ({contract_id})" if contract_id else ""
        super().__init__(
            f"feature contract mismatch: client expects {expected}, server serves "
            f"{served}{label}; upgrade the client or the server so both use the same contract"
        )


class MalformedObservation(ObservationClientError):  # noqa: N818 (pairs with ContractMismatch)
    """The server's answer does not have the contract's shape (e.g. not exactly 15 values)."""
