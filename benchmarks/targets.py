"""What one benchmark call is, per scenario kind: opened once, then called many times.

What enters: a :class:`ScenarioSpec` (plain data, so it crosses process boundaries). What
leaves: a blocking call for the sequential mode, a coroutine call for the open and closed
loops, and a probe that describes one answer (checked before measuring).

Every call does what a real consumer must do to get the 15 values: send the request and
decode the answer (protobuf for gRPC, JSON for Feast's HTTP server, a float32 array for the
in-process reads). gRPC channels get distinct options per connection index, because channels
with identical arguments share one TCP connection.
"""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import numpy as np
import orjson
from usdcop.observation.v1 import observation_pb2 as pb

from canonical.contract import FEATURE_NAMES, FEATURE_SERVICE

GET_OBSERVATION = "/usdcop.observation.v1.ObservationService/GetObservation"
GET_OBSERVATIONS = "/usdcop.observation.v1.ObservationService/GetObservations"
FEAST_GET_ONLINE = "/GrpcFeatureServer/GetOnlineFeatures"
CALL_TIMEOUT_S = 10.0
"""Deadline of one benchmark call; a call past it counts as an error."""

KIND_OBSERVATION = "observation"
KIND_FEAST_LISTEN = "feast_listen"
KIND_FEAST_SERVE = "feast_serve"
KIND_REDIS_READ = "redis_read"
KIND_FEAST_SDK = "feast_sdk"
KIND_BATCH = "observation_batch"
"""GetObservations of ``ScenarioSpec.symbols`` (one call, one Redis round trip)."""
NETWORK_KINDS = frozenset({KIND_OBSERVATION, KIND_FEAST_LISTEN, KIND_FEAST_SERVE, KIND_BATCH})
"""Kinds served by another process (all three load modes); the rest run in-process."""


@dataclass(frozen=True)
class ScenarioSpec:
    """One scenario: its name, its kind and where it lives."""

    name: str
    kind: str
    host: str = "127.0.0.1"
    port: int = 0
    symbol: str = "USDCOP"
    repo_path: str = ""
    """feast_sdk: the Feast repository folder (feature_store.yaml)."""
    env: tuple[tuple[str, str], ...] = ()
    """Environment variables the in-process kinds need (e.g. FEAST_REDIS_HOST)."""
    symbols: tuple[str, ...] = ()
    """observation_batch: the symbols of one GetObservations call."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def networked(self) -> bool:
        return self.kind in NETWORK_KINDS


SyncCall = Callable[[], object]
AsyncCall = Callable[[], Awaitable[object]]


def _grpc_options(connection: int) -> list[tuple[str, Any]]:
    # A distinct (ignored) argument per connection keeps channels off a shared subchannel.
    return [("benchmarks.connection", connection), ("grpc.enable_retries", 0)]


def _feast_request(symbol: str) -> bytes:
    from feast.protos.feast.serving import ServingService_pb2 as serving
    from feast.protos.feast.types import Value_pb2 as value_pb

    request = serving.GetOnlineFeaturesRequest(feature_service=FEATURE_SERVICE)
    request.entities["symbol"].CopyFrom(
        value_pb.RepeatedValue(val=[value_pb.Value(string_val=symbol)])
    )
    return bytes(request.SerializeToString())


def _feast_response_decoder() -> Callable[[bytes], Any]:
    from feast.protos.feast.serving import ServingService_pb2 as serving

    return serving.GetOnlineFeaturesResponse.FromString  # type: ignore[no-any-return]


def _http_body(symbol: str) -> bytes:
    return orjson.dumps({"feature_service": FEATURE_SERVICE, "entities": {"symbol": [symbol]}})


class Target:
    """Opens the calls of one scenario for one connection index."""

    def __init__(self, spec: ScenarioSpec, connection: int) -> None:
        self.spec = spec
        self.connection = connection
        self._closers: list[Callable[[], object]] = []
        self._async_closers: list[Callable[[], Awaitable[object]]] = []

    # -- sequential (blocking) -------------------------------------------------------------
    def sync_call(self) -> SyncCall | None:
        """A blocking call, or None when the kind only has a coroutine call."""
        spec = self.spec
        if spec.kind == KIND_OBSERVATION:
            channel = grpc.insecure_channel(spec.address, options=_grpc_options(self.connection))
            self._closers.append(channel.close)
            method = channel.unary_unary(
                GET_OBSERVATION,
                request_serializer=None,
                response_deserializer=pb.Observation.FromString,
            )
            request = pb.GetObservationRequest(symbol=spec.symbol).SerializeToString()
            return lambda: method(request, timeout=CALL_TIMEOUT_S)
        if spec.kind == KIND_BATCH:
            channel = grpc.insecure_channel(spec.address, options=_grpc_options(self.connection))
            self._closers.append(channel.close)
            batch = channel.unary_unary(
                GET_OBSERVATIONS,
                request_serializer=None,
                response_deserializer=pb.GetObservationsResponse.FromString,
            )
            batch_request = pb.GetObservationsRequest(symbols=spec.symbols).SerializeToString()
            return lambda: batch(batch_request, timeout=CALL_TIMEOUT_S)
        if spec.kind == KIND_FEAST_LISTEN:
            channel = grpc.insecure_channel(spec.address, options=_grpc_options(self.connection))
            self._closers.append(channel.close)
            method = channel.unary_unary(
                FEAST_GET_ONLINE,
                request_serializer=None,
                response_deserializer=_feast_response_decoder(),
            )
            request = _feast_request(spec.symbol)
            return lambda: method(request, timeout=CALL_TIMEOUT_S)
        if spec.kind == KIND_FEAST_SERVE:
            connection = http.client.HTTPConnection(spec.host, spec.port, timeout=CALL_TIMEOUT_S)
            self._closers.append(connection.close)
            body = _http_body(spec.symbol)
            headers = {"Content-Type": "application/json", "Connection": "keep-alive"}

            def post() -> object:
                connection.request("POST", "/get-online-features", body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {payload[:200]!r}")
                return orjson.loads(payload)

            return post
        if spec.kind == KIND_FEAST_SDK:
            return _feast_sdk_call(spec)
        return None

    # -- open and closed loops (coroutines) -------------------------------------------------
    async def async_call(self) -> AsyncCall:
        """A coroutine call usable with many calls in flight."""
        spec = self.spec
        if spec.kind in (KIND_OBSERVATION, KIND_FEAST_LISTEN, KIND_BATCH):
            channel = grpc.aio.insecure_channel(
                spec.address, options=_grpc_options(self.connection)
            )
            self._async_closers.append(lambda: channel.close(grace=None))
            if spec.kind == KIND_BATCH:
                method = channel.unary_unary(
                    GET_OBSERVATIONS,
                    request_serializer=None,
                    response_deserializer=pb.GetObservationsResponse.FromString,
                )
                request = pb.GetObservationsRequest(symbols=spec.symbols).SerializeToString()
            elif spec.kind == KIND_OBSERVATION:
                method = channel.unary_unary(
                    GET_OBSERVATION,
                    request_serializer=None,
                    response_deserializer=pb.Observation.FromString,
                )
                request = pb.GetObservationRequest(symbol=spec.symbol).SerializeToString()
            else:
                method = channel.unary_unary(
                    FEAST_GET_ONLINE,
                    request_serializer=None,
                    response_deserializer=_feast_response_decoder(),
                )
                request = _feast_request(spec.symbol)

            async def call_grpc() -> object:
                return await method(request, timeout=CALL_TIMEOUT_S)

            return call_grpc
        if spec.kind == KIND_FEAST_SERVE:
            pool = _HttpPool(spec.host, spec.port, "/get-online-features", _http_body(spec.symbol))
            self._async_closers.append(pool.close)
            return pool.post
        if spec.kind == KIND_REDIS_READ:
            return await self._redis_read_call()
        sync = self.sync_call()
        assert sync is not None

        async def call_inline() -> object:
            return sync()

        return call_inline

    async def _redis_read_call(self) -> AsyncCall:
        # The server's own read path, built as server.app builds it: the read plan's key and
        # 18 fields, one pipelined HMGET, Feast Value decoding and TTL checks; then the 15
        # values packed as float32.
        from core.clock import SystemClock
        from online_store.read_plan import read_plans
        from online_store.reader import StoreReader
        from server.config import ServerConfig

        config = ServerConfig.from_env(dict(self.spec.env))
        plans = read_plans((self.spec.symbol,), config.project)
        reader = StoreReader(
            config.redis_address, plans, SystemClock(), timeout_s=config.redis_timeout_s
        )
        self._async_closers.append(reader.aclose)
        plan = plans[self.spec.symbol]
        timeout_s = 1.0

        async def read() -> object:
            store_read = await reader.read(plan, timeout_s)
            values: list[float] = []
            for view in store_read.views:
                if view.values is None:
                    raise RuntimeError(f"view not servable from Redis (reason {view.reason})")
                values.extend(view.values)
            return np.array(values, dtype=np.float32)

        return read

    async def probe(self) -> dict[str, Any]:
        """Call once and describe the answer (so a run never measures a wrong answer)."""
        call = await self.async_call()
        answer = await call()
        return describe_answer(self.spec.kind, answer)

    def close_sync(self) -> None:
        for close in self._closers:
            close()
        self._closers.clear()

    async def close_async(self) -> None:
        for close in self._async_closers:
            await close()
        self._async_closers.clear()
        self.close_sync()


def _feast_sdk_call(spec: ScenarioSpec) -> SyncCall:
    import os

    os.environ.update(dict(spec.env))
    from feast import FeatureStore

    store = FeatureStore(repo_path=spec.repo_path)
    service = store.get_feature_service(FEATURE_SERVICE)  # resolved once: it re-reads the registry
    entity_rows = [{"symbol": spec.symbol}]

    def get() -> object:
        columns = store.get_online_features(features=service, entity_rows=entity_rows).to_dict()
        return np.array([columns[name][0] for name in FEATURE_NAMES], dtype=np.float32)

    return get


class _HttpPool:
    """Keep-alive HTTP/1.1 POSTs over asyncio streams, one request per connection at a time
    (HTTP/1.1 has no multiplexing), connections reused from a free list."""

    def __init__(self, host: str, port: int, path: str, body: bytes) -> None:
        self._host = host
        self._port = port
        self._request = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
        ).encode() + body
        self._free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._all: list[asyncio.StreamWriter] = []

    async def post(self) -> object:
        if self._free:
            reader, writer = self._free.pop()
        else:
            reader, writer = await asyncio.open_connection(self._host, self._port)
            self._all.append(writer)
        async with asyncio.timeout(CALL_TIMEOUT_S):
            writer.write(self._request)
            status_line = await reader.readline()
            length = 0
            close = False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                lowered = name.strip().lower()
                if lowered == b"content-length":
                    length = int(value.strip())
                elif lowered == b"connection" and value.strip().lower() == b"close":
                    close = True
            payload = await reader.readexactly(length)
        status = int(status_line.split()[1])
        if close:
            writer.close()
        else:
            self._free.append((reader, writer))
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {payload[:200]!r}")
        return orjson.loads(payload)

    async def close(self) -> None:
        for writer in self._all:
            writer.close()
        self._all.clear()
        self._free.clear()


def describe_answer(kind: str, answer: Any) -> dict[str, Any]:
    """What one answer holds: its number of values and, where known, their sources."""
    if kind == KIND_OBSERVATION:
        return {
            "n_values": len(answer.values),
            "response_bytes": answer.ByteSize(),
            "from_cache": bool(answer.from_cache),
            "sources": [pb.ValueSource.Name(v.source) for v in answer.views],
            "freshness": [pb.Freshness.Name(v.freshness) for v in answer.views],
            "fallback_reasons": [pb.FallbackReason.Name(v.fallback_reason) for v in answer.views],
        }
    if kind == KIND_BATCH:
        observations = [r.observation for r in answer.results]
        return {
            "n_values": min((len(o.values) for o in observations), default=0),
            "symbols": len(answer.results),
            "errors": [r.error.message for r in answer.results if r.HasField("error")],
            "response_bytes": answer.ByteSize(),
            "sources": sorted(
                {pb.ValueSource.Name(v.source) for o in observations for v in o.views}
            ),
            "freshness": sorted(
                {pb.Freshness.Name(v.freshness) for o in observations for v in o.views}
            ),
            "fallback_reasons": sorted(
                {pb.FallbackReason.Name(v.fallback_reason) for o in observations for v in o.views}
            ),
        }
    if kind == KIND_FEAST_LISTEN:
        names = list(answer.metadata.feature_names.val)
        present = [n for n in names if n in FEATURE_NAMES]
        statuses = [r.statuses[0] for r in answer.results]
        return {
            "n_values": len(present),
            "response_bytes": answer.ByteSize(),
            "all_present": all(s == 1 for s in statuses),  # FieldStatus.PRESENT == 1
        }
    if kind == KIND_FEAST_SERVE:
        names = answer["metadata"]["feature_names"]
        present = [n for n in names if n in FEATURE_NAMES]
        statuses = [r["statuses"][0] for r in answer["results"]]
        return {
            "n_values": len(present),
            "all_present": all(s == "PRESENT" for s in statuses),
        }
    values = np.asarray(answer, dtype=np.float32)
    return {"n_values": int(values.size), "all_finite": bool(np.isfinite(values).all())}
