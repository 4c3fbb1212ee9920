"""Transport security settings: gRPC server credentials and the Redis connection's TLS options.

What enters: a ``ServerConfig`` (certificate/key/CA file paths). What leaves:
``server_credentials(config)`` -> ``grpc.ServerCredentials`` for TLS (mTLS when a client CA is
set: client certificates are then required and verified by the handshake) or None for a
plaintext port; ``redis_connection_options(config)`` -> the ``redis.asyncio`` connection class
and keyword arguments every Redis connection of the server uses (password, TLS CA, client
certificate and key).

Key files are read once at start-up; their contents are never logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from server.config import ServerConfig


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS credentials of the gRPC port, or None when it serves plaintext."""
    if not config.tls_cert_file:
        return None
    chain = Path(config.tls_cert_file).read_bytes()
    key = Path(config.tls_key_file).read_bytes()
    client_ca = Path(config.tls_client_ca_file).read_bytes() if config.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def redis_connection_options(
    config: ServerConfig,
) -> tuple[type[aioredis.Connection], dict[str, Any]]:
    """The connection class (TLS or not) and its keyword arguments (no client retries: a
    failure is reported at once instead of retried past its bound)."""
    kwargs: dict[str, Any] = {
        "host": config.redis_host,
        "port": config.redis_port,
        "db": config.redis_db,
        "password": config.redis_password or None,
        "socket_connect_timeout": max(config.redis_timeout_s, 0.5),
        "retry": Retry(NoBackoff(), 0),
    }
    if not config.redis_tls:
        return aioredis.Connection, kwargs
    kwargs.update(_redis_tls_kwargs(config))
    return aioredis.SSLConnection, kwargs


def _redis_tls_kwargs(config: ServerConfig) -> dict[str, Any]:
    tls: dict[str, Any] = {"ssl_cert_reqs": "required"}
    if config.redis_tls_ca_file:
        tls["ssl_ca_certs"] = config.redis_tls_ca_file
    if config.redis_tls_cert_file:
        tls["ssl_certfile"] = config.redis_tls_cert_file
        tls["ssl_keyfile"] = config.redis_tls_key_file
    return tls


def redis_client_tls_kwargs(config: ServerConfig) -> dict[str, Any]:
    """``redis.asyncio.Redis(...)`` keyword arguments for TLS (empty without TLS)."""
    if not config.redis_tls:
        return {}
    return {"ssl": True, **_redis_tls_kwargs(config)}
