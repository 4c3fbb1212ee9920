"""The blocking client: what a synchronous agent loop imports.

What enters: a symbol. What leaves: an :class:`~client.ObservationResult` (15 float32 values).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from datetime import datetime
from types import TracebackType
from typing import Any

import grpc
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from client._base import DEFAULT_TIMEOUT_S, BaseClient, batch_request, channel_options
from client._batch import BatchError, batch_results
from client._errors import ObservationRpcError
from client._result import ObservationResult, result_from_proto
from client._tls import ClientTls, push_metadata
from client._watch import WatchState


class ObservationClient(BaseClient):
    """Blocking client of ObservationService.

    Every call has a deadline (``timeout_s``, retries included); UNAVAILABLE is retried by
    the channel (service-config retry policy); the first call checks the server's contract
    hash against ``canonical.contract.CONTRACT_HASH`` and raises ContractMismatch on a
    difference.

    >>> from client import ObservationClient
    >>> with ObservationClient("127.0.0.1:50051") as obs:   # doctest: +SKIP
    ...     result = obs.get("USDCOP")
    ...     result.values          # numpy float32, shape (15,)
    ...     result.views[0].source  # 'online_store' or 'compute_fallback'

    A channel passed in is used as is (add your own retry options) and is not closed by
    the client.
    """

    def __init__(  # noqa: PLR0913 - the public client's keyword-only options
        self,
        target: str | None = None,
        *,
        channel: grpc.Channel | None = None,
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
        self._channel: grpc.Channel = (
            channel
            if channel is not None
            else grpc.insecure_channel(self.target, options=channel_options(options))
            if tls is None
            else grpc.secure_channel(
                self.target, tls.credentials(), options=channel_options(options)
            )
        )
        self._stub = pb_grpc.ObservationServiceStub(self._channel)
        self._push_metadata = push_metadata(push_token)
        self._contract_lock = threading.Lock()

    def get(self, symbol: str) -> ObservationResult:
        """The latest observation of ``symbol``.

        >>> ObservationClient().get("USDCOP").values.shape   # doctest: +SKIP
        (15,)
        """
        self._ensure_contract()
        try:
            answer = self._stub.GetObservation(
                pb.GetObservationRequest(symbol=symbol), timeout=self.timeout_s
            )
        except grpc.RpcError as error:
            raise ObservationRpcError.from_rpc_error(error) from None
        return result_from_proto(answer, self._hash_to_enforce)

    def get_many(self, symbols: list[str]) -> list[ObservationResult | BatchError]:
        """The latest observation of each symbol, in request order, in one call (one Redis
        round trip on the server); a symbol the server cannot answer gets a BatchError.

        >>> [r.symbol for r in ObservationClient().get_many(["USDCOP"])]  # doctest: +SKIP
        ['USDCOP']
        """
        request = batch_request(symbols)
        self._ensure_contract()
        try:
            answer = self._stub.GetObservations(request, timeout=self.timeout_s)
        except grpc.RpcError as error:
            raise ObservationRpcError.from_rpc_error(error) from None
        return batch_results(answer, self._hash_to_enforce)

    def watch(
        self, symbols: list[str], *, heartbeat_s: float = 5.0, reconnect: bool = True
    ) -> Generator[ObservationResult, None, None]:
        """Each symbol's current observation, then one result per change, for as long as
        the caller iterates. A dead or failed stream (silent for 3 heartbeats, server gone)
        is reopened with backoff and resumes: unchanged observations are not repeated.
        INVALID_ARGUMENT / NOT_FOUND (and any error with ``reconnect=False``) raise
        ObservationRpcError. Close the generator (or break) to end the stream.

        >>> for result in ObservationClient().watch(["USDCOP"]):   # doctest: +SKIP
        ...     act(result.values)
        """
        state = WatchState(symbols, heartbeat_s, self._hash_to_enforce, reconnect)
        self._ensure_contract()
        while True:
            call = self._stub.WatchObservations(state.request)
            watchdog = _Watchdog(call, state.silence_limit_s)
            code: grpc.StatusCode | None = None
            try:
                for message in call:
                    watchdog.feed()
                    result = state.accept(message)
                    if result is not None:
                        yield result
            except grpc.RpcError as error:
                code = grpc.StatusCode.UNAVAILABLE if watchdog.fired else error.code()
                delay = state.retry_after(code)
                if delay is None:
                    if watchdog.fired:
                        raise ObservationRpcError(code, "the watch stream went silent") from None
                    raise ObservationRpcError.from_rpc_error(error) from None
            else:
                delay = state.retry_after(None)
                if delay is None:
                    return
            finally:
                watchdog.stop()
                call.cancel()  # type: ignore[no-untyped-call]
            time.sleep(delay)

    def describe(self) -> pb.ObservationContract:
        """The server's feature contract (names, views, dtypes, TTLs, id, hash).

        >>> [f.name for f in ObservationClient().describe().features][:2]  # doctest: +SKIP
        ['log_ret_5m', 'log_ret_1h']
        """
        try:
            contract: pb.ObservationContract = self._stub.DescribeObservation(
                pb.DescribeObservationRequest(), timeout=self.timeout_s
            )
        except grpc.RpcError as error:
            raise ObservationRpcError.from_rpc_error(error) from None
        return contract

    def push_state(self, symbol: str, position: float, event_time: datetime | None = None) -> bool:
        """Write the agent's position; True if applied, False if the store held a newer state.

        ``event_time`` must be tz-aware; it defaults to now.

        >>> ObservationClient().push_state("USDCOP", 0.5, datetime.now(UTC))  # doctest: +SKIP
        True
        """
        request = self._push_request(symbol, position, event_time)
        self._ensure_contract()
        try:
            answer = self._stub.PushState(
                request, timeout=self.timeout_s, metadata=self._push_metadata
            )
        except grpc.RpcError as error:
            raise ObservationRpcError.from_rpc_error(error) from None
        return bool(answer.applied)

    def check_contract(self) -> None:
        """Compare the server's contract hash with ours now (raises ContractMismatch)."""
        self._verify_contract(self.describe())

    def _ensure_contract(self) -> None:
        if self._contract_checked:
            return
        with self._contract_lock:
            if not self._contract_checked:
                self.check_contract()

    def close(self) -> None:
        """Close the channel if the client created it."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> ObservationClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Watchdog:
    """Cancels a stream that stayed silent for ``limit_s`` (a dead server or network)."""

    def __init__(self, call: Any, limit_s: float) -> None:
        self._call = call
        self._limit_s = limit_s
        self._last = time.monotonic()
        self._stopped = threading.Event()
        self.fired = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="watch-watchdog")
        self._thread.start()

    def feed(self) -> None:
        self._last = time.monotonic()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(min(self._limit_s, 0.25)):
            if time.monotonic() - self._last > self._limit_s:
                self.fired = True
                self._call.cancel()  # type: ignore[no-untyped-call]
                return
