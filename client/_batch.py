"""GetObservations' answer on the client side: results or per-symbol errors, in request order.

What enters: a ``GetObservationsResponse``. What leaves: a list with one entry per requested
symbol: an :class:`~client.ObservationResult`, or a :class:`BatchError` (its gRPC code and
message) for a symbol the server could not answer; one bad symbol never fails the others.
"""

from __future__ import annotations

import grpc
from usdcop.observation.v1 import observation_pb2 as pb

from client._result import ObservationResult, result_from_proto


def batch_results(
    response: pb.GetObservationsResponse, expected_hash: str | None
) -> list[ObservationResult | BatchError]:
    """GetObservations' answer as results or per-symbol errors, in request order."""
    out: list[ObservationResult | BatchError] = []
    for result in response.results:
        if result.WhichOneof("result") == "observation":
            out.append(result_from_proto(result.observation, expected_hash))
        else:
            out.append(BatchError(result.symbol, result.error.code, result.error.message))
    return out


class BatchError:
    """Why one symbol of a ``get_many`` call has no observation."""

    def __init__(self, symbol: str, code: int, message: str) -> None:
        self.symbol = symbol
        """The symbol as asked for."""
        self.code = _STATUS_BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN)
        """The gRPC status it would have failed with alone (e.g. NOT_FOUND)."""
        self.message = message

    def __repr__(self) -> str:
        return f"BatchError({self.symbol!r}, {self.code.name}, {self.message!r})"


_STATUS_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
