"""The asyncio client, for agents running an event loop.

What enters: a symbol. What leaves: an :class:`~client.ObservationResult` (15 float32 values).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from types import TracebackType
from typing import Any

import grpc
import grpc.aio
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from client._base import DEFAULT_TIMEOUT_S, BaseClient, batch_request, channel_options
from client._batch import BatchError, batch_results
from client._errors import ObservationRpcError
from client._result import ObservationResult, result_from_proto
from client._tls import ClientTls, push_metadata
from client._watch import WatchState


class AsyncObservationClient(BaseClient):
    """asyncio client of ObservationService; same behaviour as ObservationClient.

    >>> from client import AsyncObservationClient
    >>> async def main() -> None:                          # doctest: +SKIP
    ...     async with AsyncObservationClient("127.0.0.1:50051") as obs:
    ...         result = await obs.get("USDCOP")
    ...         print(result.values)

    Create it inside the event loop that uses it (grpc.aio channels are bound to a loop).
    A channel passed in is used as is and is not closed by the client.
    """

    def __init__(  # noqa: PLR0913 - the public client's keyword-only options
        self,
        target: str | None = None,
        *,
        channel: grpc.aio.Channel | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        check_contract: bool = True,
        expected_hash: str | None = None,
        options: tuple[tuple[str, Any], ...] = (),
        tls: ClientTls | None = None,
        push_token: str | None = None,
    ) -> None:
        super().__init__(
            target,
            channel_given=channel is not None,
            timeout_s=timeout_s,
            check_contract=check_contract,
            expected_hash=expected_hash,
        )
        self._channel: grpc.aio.Channel = (
            channel
            if channel is not None
            else grpc.aio.insecure_channel(self.target, options=channel_options(options))
            if tls is None
            else grpc.aio.secure_channel(
                self.target, tls.credentials(), options=channel_options(options)
            )
        )
        self._stub = pb_grpc.ObservationServiceStub(self._channel)
        self._push_metadata = push_metadata(push_token)
        self._contract_lock: asyncio.Lock | None = None

    async def get(self, symbol: str) -> ObservationResult:
        """The latest observation of ``symbol``.

        >>> (await obs.get("USDCOP")).values.shape   # doctest: +SKIP
        (15,)
        """
        await self._ensure_contract()
        try:
            answer = await self._stub.GetObservation(
                pb.GetObservationRequest(symbol=symbol), timeout=self.timeout_s
            )
        except grpc.RpcError as error:
            raise ObservationRpcError.from_rpc_error(error) from None
        return result_from_proto(answer, self._hash_to_enforce)

    async def get_many(self, symbols: list[str]) -> list[ObservationResult | BatchError]:
        """The latest observation of each symbol, in request order, in one call; a symbol
        the server cannot answer gets a BatchError (see ObservationClient.get_many)."""
        request = batch_request(symbols)
        await self._ensure_contract()
        try:
            answer = await self._stub.GetObservations(request, timeout=self.timeout_s)
        except grpc.RpcError as error:
            raise ObservationRpcError.from_rpc_error(error) from None
        return batch_results(answer, self._hash_to_enforce)

    async def watch(
        self, symbols: list[str], *, heartbeat_s: float = 5.0, reconnect: bool = True
    ) -> AsyncIterator[ObservationResult]:
        """Each symbol's current observation, then one result per change (see
        ObservationClient.watch: same reconnection and resume rules).

        >>> async for result in obs.watch(["USDCOP"]):   # doctest: +SKIP
        ...     act(result.values)
        """
        state = WatchState(symbols, heartbeat_s, self._hash_to_enforce, reconnect)
        await self._ensure_contract()
        while True:
            call = self._stub.WatchObservations(state.request)
            stream = call.__aiter__()
            code: grpc.StatusCode | None = None
            failure: ObservationRpcError | None = None
            try:
                while True:
                    try:
                        async with asyncio.timeout(state.silence_limit_s):
                            message = await stream.__anext__()
                    except TimeoutError:
                        code = grpc.StatusCode.UNAVAILABLE
                        failure = ObservationRpcError(code, "the watch stream went silent")
                        break
                    except StopAsyncIteration:
                        break
                    except grpc.RpcError as error:
                        code = error.code()
                        failure = ObservationRpcError.from_rpc_error(error)
                        break
                    result = state.accept(message)
                    if result is not None:
                        yield result
            finally:
                call.cancel()
            delay = state.retry_after(code)
            if delay is None:
                if failure is not None:
                    raise failure
                return
            await asyncio.sleep(delay)

    async def describe(self) -> pb.ObservationContract:
        """The server's feature contract (names, views, dtypes, TTLs, id, hash).

        >>> (await obs.describe()).contract_id   # doctest: +SKIP
        'CTR-FEATURE-001'
        """
        try:
            contract: pb.ObservationContract = await self._stub.DescribeObservation(
                pb.DescribeObservationRequest(), timeout=self.timeout_s
            )
        except grpc.RpcError as error:
            raise ObservationRpcError.from_rpc_error(error) from None
        return contract

    async def push_state(
        self, symbol: str, position: float, event_time: datetime | None = None
    ) -> bool:
        """Write the agent's position; True if applied, False if the store held a newer state.

        >>> await obs.push_state("USDCOP", -1.0, datetime.now(UTC))   # doctest: +SKIP
        True
        """
        request = self._push_request(symbol, position, event_time)
        await self._ensure_contract()
        try:
            answer = await self._stub.PushState(
                request, timeout=self.timeout_s, metadata=self._push_metadata
            )
        except grpc.RpcError as error:
            raise ObservationRpcError.from_rpc_error(error) from None
        return bool(answer.applied)

    async def check_contract(self) -> None:
        """Compare the server's contract hash with ours now (raises ContractMismatch)."""
        self._verify_contract(await self.describe())

    async def _ensure_contract(self) -> None:
        if self._contract_checked:
            return
        if self._contract_lock is None:
            self._contract_lock = asyncio.Lock()
        async with self._contract_lock:
            if not self._contract_checked:
                await self.check_contract()

    async def close(self) -> None:
        """Close the channel if the client created it."""
        if self._owns_channel:
            await self._channel.close(grace=None)

    async def __aenter__(self) -> AsyncObservationClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
