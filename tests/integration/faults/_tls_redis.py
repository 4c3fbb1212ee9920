"""A real redis-server listening on TLS only, with certificates made by trustme: the server's
certificate from one CA, client certificates from the same CA (``--tls-auth-clients yes``)."""

from __future__ import annotations

import contextlib
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import trustme

from devstack.embedded_redis import find_redis_server, free_port


@dataclass(frozen=True)
class TlsRedis:
    host: str
    port: int
    ca_file: str
    """CA of the server certificate (and of the client certificates)."""
    client_cert_file: str
    client_key_file: str
    other_ca_file: str
    """A CA that signed nothing here: a client trusting only it must fail the handshake."""

    def client(self) -> redis.Redis:
        return redis.Redis(
            host=self.host,
            port=self.port,
            ssl=True,
            ssl_ca_certs=self.ca_file,
            ssl_certfile=self.client_cert_file,
            ssl_keyfile=self.client_key_file,
        )


def _write(folder: Path, name: str, data: bytes) -> str:
    path = folder / name
    path.write_bytes(data)
    return str(path)


@contextlib.contextmanager
def tls_redis() -> Iterator[TlsRedis]:
    with tempfile.TemporaryDirectory(prefix="usdcop-tls-redis-") as tmp:
        folder = Path(tmp)
        ca = trustme.CA()
        server_cert = ca.issue_cert("127.0.0.1", "localhost")
        client_cert = ca.issue_cert("observation-server")
        server = TlsRedis(
            host="127.0.0.1",
            port=free_port(),
            ca_file=_write(folder, "ca.pem", ca.cert_pem.bytes()),
            client_cert_file=_write(
                folder, "client.pem", b"".join(p.bytes() for p in client_cert.cert_chain_pems)
            ),
            client_key_file=_write(folder, "client.key", client_cert.private_key_pem.bytes()),
            other_ca_file=_write(folder, "other-ca.pem", trustme.CA().cert_pem.bytes()),
        )
        cert = _write(
            folder, "server.pem", b"".join(p.bytes() for p in server_cert.cert_chain_pems)
        )
        key = _write(folder, "server.key", server_cert.private_key_pem.bytes())
        args = [
            find_redis_server(),
            "--port", "0",
            "--tls-port", str(server.port),
            "--bind", server.host,
            "--tls-cert-file", cert,
            "--tls-key-file", key,
            "--tls-ca-cert-file", server.ca_file,
            "--tls-auth-clients", "yes",
            "--save", "",
            "--appendonly", "no",
            "--dir", tmp,
            "--loglevel", "warning",
        ]  # fmt: skip
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        try:
            _wait_ready(proc, server)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()


def _wait_ready(proc: subprocess.Popen[bytes], server: TlsRedis) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            if "tls" in err.lower() and "not" in err.lower():
                pytest.skip(f"this redis-server has no TLS support: {err.strip()[-200:]}")
            raise RuntimeError(f"TLS redis-server exited: {err.strip()[-500:]}")
        client = server.client()
        try:
            if client.ping():
                return
        except (redis.RedisError, ssl.SSLError, OSError):
            time.sleep(0.05)
        finally:
            client.close()
    raise RuntimeError("TLS redis-server did not answer PING within 10 s")
