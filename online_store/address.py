"""The online store's address: where Redis listens and how to reach it.

What enters: host, port, password (never printed), TLS files, cluster or not, the database, and
the ``FEAST_REDIS_*`` environment (``RedisAddress.from_env``). What leaves: the address, a
redis-py client of it (``connect``), the ``redis.asyncio`` connection class and options every
connection of the server uses (``connection_options``), and the ``FEAST_REDIS_*`` variables
Feast's ``feature_store.yaml`` expands (``feast_env``/``exported``). Every settings model
(server, pipeline, Airflow) holds this one type.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from core.settings import SettingsError, parse_bool, parse_int


@dataclass(frozen=True)
class RedisAddress:
    """Where the Feast online store (Redis) listens."""

    host: str
    """Host name or IP address."""
    port: int
    """TCP port."""
    password: str = field(default="", repr=False)
    """``AUTH`` password; empty for none. Must not contain ',' (Feast's connection string).
    A secret: never in ``repr``, logs or flags (environment only)."""
    tls: bool = False
    """Connect over TLS."""
    cluster: bool = False
    """A Redis Cluster (Feast's ``redis_type: redis_cluster``); host:port is a startup node."""
    tls_ca_file: str = ""
    """PEM CA bundle that signed Redis' certificate (``FEAST_REDIS_SSL_CA_CERTS``)."""
    tls_cert_file: str = ""
    """PEM client certificate for Redis TLS (``FEAST_REDIS_SSL_CERTFILE``)."""
    tls_key_file: str = ""
    """PEM key of ``tls_cert_file`` (``FEAST_REDIS_SSL_KEYFILE``)."""
    db: int = 0
    """Database number (always 0 in a cluster)."""
    startup_nodes: tuple[tuple[str, int], ...] = ()
    """A cluster's startup nodes as (host, port); empty: host:port alone."""

    def __post_init__(self) -> None:
        if not self.host:
            raise SettingsError("FEAST_REDIS_HOST must not be empty")
        if not 0 < self.port < 65536:
            raise SettingsError(f"FEAST_REDIS_PORT must be 1-65535: got {self.port}")
        for env, path in self._tls_files().items():
            if path and not self.tls:
                raise SettingsError(f"{env} needs FEAST_REDIS_SSL=true")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise SettingsError("FEAST_REDIS_SSL_CERTFILE and FEAST_REDIS_SSL_KEYFILE go together")
        if self.db < 0 or (self.cluster and self.db != 0):
            raise SettingsError(f"Redis database {self.db}: must be >= 0, and 0 in a cluster")

    def check_feast_connection_string(self) -> None:
        """SettingsError when Feast could not use this address: its connection string is split
        on ',' (the server's own connections have no such limit)."""
        if "," in self.password:
            raise SettingsError("FEAST_REDIS_PASSWORD must not contain ',' (Feast splits on it)")
        for env, path in self._tls_files().items():
            if "," in path:
                raise SettingsError(f"{env} must not contain ',' (Feast splits on it)")

    @property
    def cluster_nodes(self) -> tuple[tuple[str, int], ...]:
        """The cluster's startup nodes: those listed, else host:port."""
        return self.startup_nodes or ((self.host, self.port),)

    def connection_options(self, timeout_s: float) -> tuple[type[Any], dict[str, Any]]:
        """The ``redis.asyncio`` connection class (TLS or not) and its keyword arguments; no
        client retries: a failure is reported at once instead of retried past its bound."""
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "db": self.db,
            "password": self.password or None,
            "socket_connect_timeout": max(timeout_s, 0.5),
            "retry": Retry(NoBackoff(), 0),
        }
        if not self.tls:
            return aioredis.Connection, kwargs
        kwargs.update(self._tls_kwargs())
        return aioredis.SSLConnection, kwargs

    def async_client_options(self, timeout_s: float) -> dict[str, Any]:
        """``redis.asyncio.Redis(...)`` keyword arguments (bytes replies, no client retries)."""
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options: dict[str, Any] = {
            "password": self.password or None,
            "socket_connect_timeout": max(timeout_s, 0.5),
            "retry": Retry(NoBackoff(), 0),
            "decode_responses": False,
        }
        if self.tls:
            options.update(ssl=True, **self._tls_kwargs())
        return options

    def async_client(self, timeout_s: float) -> Any:
        """A ``redis.asyncio.Redis`` of host:port/db (hiredis parser when installed)."""
        import redis.asyncio as aioredis

        return aioredis.Redis(
            host=self.host, port=self.port, db=self.db, **self.async_client_options(timeout_s)
        )

    def _tls_kwargs(self) -> dict[str, Any]:
        tls: dict[str, Any] = {"ssl_cert_reqs": "required"}
        if self.tls_ca_file:
            tls["ssl_ca_certs"] = self.tls_ca_file
        if self.tls_cert_file:
            tls["ssl_certfile"] = self.tls_cert_file
            tls["ssl_keyfile"] = self.tls_key_file
        return tls

    def _tls_files(self) -> dict[str, str]:
        return {
            "FEAST_REDIS_SSL_CA_CERTS": self.tls_ca_file,
            "FEAST_REDIS_SSL_CERTFILE": self.tls_cert_file,
            "FEAST_REDIS_SSL_KEYFILE": self.tls_key_file,
        }

    def _feast_tls_options(self) -> str:
        # redis-py's keyword arguments, appended to Feast's connection string (Feast passes
        # every key=value to redis.Redis). Only the set ones: an empty ssl_ca_certs would be
        # loaded as a file named "".
        options = {
            "ssl_ca_certs": self.tls_ca_file,
            "ssl_certfile": self.tls_cert_file,
            "ssl_keyfile": self.tls_key_file,
        }
        return "".join(f",{key}={value}" for key, value in options.items() if value)

    def connect(self, timeout_s: float = 2.0) -> Any:
        """A redis-py client of this address (``redis.RedisCluster`` for a cluster)."""
        import redis

        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "password": self.password or None,
            "ssl": self.tls,
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
        }
        if self.tls:
            options.update(
                ssl_ca_certs=self.tls_ca_file or None,
                ssl_certfile=self.tls_cert_file or None,
                ssl_keyfile=self.tls_key_file or None,
            )
        if self.cluster:
            return redis.RedisCluster(**options)
        return redis.Redis(**options)

    def feast_env(self) -> dict[str, str]:
        """The ``FEAST_REDIS_*`` variables ``feature_store.yaml`` expands."""
        self.check_feast_connection_string()
        return {
            "FEAST_REDIS_HOST": self.host,
            "FEAST_REDIS_PORT": str(self.port),
            "FEAST_REDIS_PASSWORD": self.password,
            "FEAST_REDIS_SSL": "true" if self.tls else "false",
            "FEAST_REDIS_TYPE": "redis_cluster" if self.cluster else "redis",
            **self._tls_files(),
            "FEAST_REDIS_TLS_OPTIONS": self._feast_tls_options(),
        }

    @contextmanager
    def exported(self, environ: MutableMapping[str, str] | None = None) -> Iterator[None]:
        """Set the ``FEAST_REDIS_*`` variables (in ``os.environ`` by default) for the block,
        then restore what was there.

        Construct ``FeatureStore(repo_path=...)`` inside it: Feast expands the yaml then, once
        (the store keeps the expanded connection string), so nothing leaks to the rest of the
        process.
        """
        target = os.environ if environ is None else environ
        saved = {key: target.get(key) for key in self.feast_env()}
        target.update(self.feast_env())
        try:
            yield
        finally:
            for key, old in saved.items():
                if old is None:
                    target.pop(key, None)
                else:
                    target[key] = old

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RedisAddress | None:
        """The address from ``FEAST_REDIS_*``; None when ``FEAST_REDIS_HOST`` is unset or empty."""
        host = environ.get("FEAST_REDIS_HOST", "").strip()
        if not host:
            return None
        address = cls(
            host=host,
            port=parse_int("FEAST_REDIS_PORT", environ.get("FEAST_REDIS_PORT", "6379")),
            password=environ.get("FEAST_REDIS_PASSWORD", ""),
            tls=parse_bool("FEAST_REDIS_SSL", environ.get("FEAST_REDIS_SSL", "false")),
            cluster=parse_redis_type(environ.get("FEAST_REDIS_TYPE", "redis")),
            tls_ca_file=environ.get("FEAST_REDIS_SSL_CA_CERTS", "").strip(),
            tls_cert_file=environ.get("FEAST_REDIS_SSL_CERTFILE", "").strip(),
            tls_key_file=environ.get("FEAST_REDIS_SSL_KEYFILE", "").strip(),
        )
        address.check_feast_connection_string()
        return address


def parse_redis_type(raw: str) -> bool:
    """``FEAST_REDIS_TYPE``: True for redis_cluster, False for redis (or empty)."""
    value = raw.strip() or "redis"
    if value not in ("redis", "redis_cluster"):
        raise SettingsError(f"FEAST_REDIS_TYPE must be redis or redis_cluster: got {raw!r}")
    return value == "redis_cluster"
