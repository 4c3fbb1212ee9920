"""TLS and mTLS on the gRPC port, PushState authorization (bearer token, client-certificate
identity), reflection switchable. Certificates are made in the test (trustme); real server on
port 0, real secure channels, the client library's own TLS and token settings."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from usdcop.observation.v1 import observation_pb2 as pb

from client import AsyncObservationClient, ClientTls, ObservationRpcError
from devstack.embedded_redis import EmbeddedRedis
from server.app import create_server
from server.config import ServerConfig
from tests.integration.server.conftest import server_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class Pki:
    """A server CA + server certificate, and a client CA with two client identities."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        server_ca = trustme.CA()
        client_ca = trustme.CA()
        self.server_ca = self._write("server-ca.pem", server_ca.cert_pem.bytes())
        issued = server_ca.issue_cert("localhost", "127.0.0.1")
        self.server_cert = self._write(
            "server.pem", b"".join(b.bytes() for b in issued.cert_chain_pems)
        )
        self.server_key = self._write("server.key", issued.private_key_pem.bytes())
        self.client_ca = self._write("client-ca.pem", client_ca.cert_pem.bytes())
        self.clients: dict[str, ClientTls] = {}
        for name in ("agent-1", "intruder"):
            cert = client_ca.issue_cert(name, common_name=name)
            self.clients[name] = ClientTls(
                root_certificates=server_ca.cert_pem.bytes(),
                certificate_chain=b"".join(b.bytes() for b in cert.cert_chain_pems),
                private_key=cert.private_key_pem.bytes(),
            )
        self.server_only = ClientTls(root_certificates=server_ca.cert_pem.bytes())

    def _write(self, name: str, data: bytes) -> str:
        path = self.folder / name
        path.write_bytes(data)
        return str(path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@asynccontextmanager
async def serving(config: ServerConfig) -> AsyncIterator[str]:
    server, port = await create_server(config)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


def _config(redis: EmbeddedRedis, data_dir: Path, pki: Pki, **overrides: object) -> ServerConfig:
    return server_config(
        redis.port,
        data_dir,
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        **overrides,
    )


def test_tls_serves_tls_clients_and_refuses_plaintext(
    redis_server: EmbeddedRedis, data_dir: Path, pki: Pki
) -> None:
    async def scenario() -> None:
        async with serving(_config(redis_server, data_dir, pki)) as target:
            async with AsyncObservationClient(target, tls=pki.server_only, timeout_s=10) as obs:
                assert (await obs.get("USDCOP")).values.shape == (15,)
            async with AsyncObservationClient(target, timeout_s=1) as plain:
                with pytest.raises(ObservationRpcError) as raised:
                    await plain.get("USDCOP")
                assert raised.value.code == grpc.StatusCode.UNAVAILABLE

    asyncio.run(scenario())


def test_mtls_requires_a_client_certificate(
    redis_server: EmbeddedRedis, data_dir: Path, pki: Pki
) -> None:
    config = _config(redis_server, data_dir, pki, tls_client_ca_file=pki.client_ca)

    async def scenario() -> None:
        async with serving(config) as target:
            tls = pki.clients["agent-1"]
            async with AsyncObservationClient(target, tls=tls, timeout_s=10) as obs:
                assert (await obs.get("USDCOP")).values.shape == (15,)
            async with AsyncObservationClient(target, tls=pki.server_only, timeout_s=1) as anon:
                with pytest.raises(ObservationRpcError) as raised:
                    await anon.get("USDCOP")
                assert raised.value.code == grpc.StatusCode.UNAVAILABLE

    asyncio.run(scenario())


def _now() -> datetime:
    return datetime.fromtimestamp(time.time(), UTC)


def test_push_state_needs_the_bearer_token(
    redis_server: EmbeddedRedis, data_dir: Path, pki: Pki
) -> None:
    config = _config(redis_server, data_dir, pki, push_token="s3cret-token")

    async def push(target: str, token: str | None) -> bool:
        async with AsyncObservationClient(
            target, tls=pki.server_only, timeout_s=10, push_token=token
        ) as obs:
            return await obs.push_state("USDCOP", 0.25, _now())

    async def scenario() -> None:
        async with serving(config) as target:
            for token in (None, "wrong-token", ""):
                with pytest.raises(ObservationRpcError) as raised:
                    await push(target, token)
                assert raised.value.code == grpc.StatusCode.UNAUTHENTICATED
                assert "s3cret-token" not in str(raised.value)
            assert await push(target, "s3cret-token") is True
            # Reads stay open to every caller.
            async with AsyncObservationClient(target, tls=pki.server_only, timeout_s=10) as obs:
                assert (await obs.get("USDCOP")).values.shape == (15,)

    asyncio.run(scenario())


def test_push_state_allowed_client_identity_or_permission_denied(
    redis_server: EmbeddedRedis, data_dir: Path, pki: Pki
) -> None:
    config = _config(
        redis_server,
        data_dir,
        pki,
        tls_client_ca_file=pki.client_ca,
        push_allowed_clients=("agent-1",),
    )

    async def push(target: str, who: str) -> bool:
        async with AsyncObservationClient(target, tls=pki.clients[who], timeout_s=10) as obs:
            return await obs.push_state("USDCOP", -0.5, _now())

    async def scenario() -> None:
        async with serving(config) as target:
            assert await push(target, "agent-1") is True
            with pytest.raises(ObservationRpcError) as raised:
                await push(target, "intruder")
            assert raised.value.code == grpc.StatusCode.PERMISSION_DENIED

    asyncio.run(scenario())


def test_cli_takes_the_tls_files_and_the_token_file(
    redis_server: EmbeddedRedis, data_dir: Path, pki: Pki, tmp_path: Path
) -> None:
    config = _config(
        redis_server, data_dir, pki, tls_client_ca_file=pki.client_ca, push_token="s3cret-token"
    )
    agent = pki.clients["agent-1"]
    assert agent.certificate_chain is not None and agent.private_key is not None
    (tmp_path / "agent.pem").write_bytes(agent.certificate_chain)
    (tmp_path / "agent.key").write_bytes(agent.private_key)
    (tmp_path / "token").write_text("s3cret-token\n")
    (tmp_path / "wrong").write_text("wrong-token\n")
    tls = ["--ca-file", pki.server_ca, "--cert-file", str(tmp_path / "agent.pem")]
    tls += ["--key-file", str(tmp_path / "agent.key"), "--timeout-s", "10"]

    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "client", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    async def scenario() -> None:
        async with serving(config) as target:
            pushed = await cli(
                "USDCOP",
                "--target",
                target,
                *tls,
                "--push",
                "-0.75",
                "--json",
                "--token-file",
                str(tmp_path / "token"),
            )
            assert pushed.returncode == 0, pushed.stderr
            assert json.loads(pushed.stdout)["values"]["position"] == -0.75
            refused = await cli(
                "USDCOP",
                "--target",
                target,
                *tls,
                "--push",
                "0.5",
                "--token-file",
                str(tmp_path / "wrong"),
            )
            assert refused.returncode == 1  # an RPC error; 2 stays argparse's usage error
            assert refused.stderr.count("\n") == 1 and "UNAUTHENTICATED" in refused.stderr
            assert "wrong-token" not in refused.stderr
            plaintext = await cli("USDCOP", "--target", target, "--timeout-s", "1")
            assert plaintext.returncode == 1 and "UNAVAILABLE" in plaintext.stderr
            usage = await cli("USDCOP", "--target", target, "--cert-file", pki.server_ca)
            assert usage.returncode == 2 and "--key-file" in usage.stderr

    asyncio.run(scenario())


@pytest.mark.parametrize("enabled", [True, False])
def test_reflection_is_switchable(
    redis_server: EmbeddedRedis, data_dir: Path, enabled: bool
) -> None:
    config = server_config(redis_server.port, data_dir, reflection=enabled)

    async def scenario() -> None:
        server, port = await create_server(config)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = reflection_pb2_grpc.ServerReflectionStub(channel)
                request = reflection_pb2.ServerReflectionRequest(list_services="")
                if enabled:
                    async for reply in stub.ServerReflectionInfo(iter([request]), timeout=10):
                        names = {s.name for s in reply.list_services_response.service}
                        assert "usdcop.observation.v1.ObservationService" in names
                        break
                else:
                    with pytest.raises(grpc.aio.AioRpcError) as raised:
                        async for _ in stub.ServerReflectionInfo(iter([request]), timeout=10):
                            pass
                    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
                # The observation service itself is served either way.
                call = channel.unary_unary(
                    "/usdcop.observation.v1.ObservationService/GetObservation",
                    request_serializer=pb.GetObservationRequest.SerializeToString,
                    response_deserializer=pb.Observation.FromString,
                )
                answer = await call(pb.GetObservationRequest(symbol="USDCOP"), timeout=10)
                assert len(answer.values) == 15
        finally:
            await server.stop(0)

    asyncio.run(scenario())
