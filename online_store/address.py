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

from core.settings import SettingsError, about, parse_choice, parse_list, read_variable, secret

REDIS_TYPES = ("redis", "redis_cluster")

REDIS_VARIABLES: dict[str, dict[str, Any]] = {
    "host": about("FEAST_REDIS_HOST", "Redis (Feast online store) host"),
    "port": about("FEAST_REDIS_PORT", "Redis TCP port"),
    "password": secret("FEAST_REDIS_PASSWORD", "Redis password; empty for none"),
    "tls": about("FEAST_REDIS_SSL", "connect to Redis over TLS (true/false)"),
    "db": about("FEAST_REDIS_DB", "Redis logical database number"),
    "type": about(
        "FEAST_REDIS_TYPE",
        "redis (one server) or redis_cluster (Feast's redis_type)",
        parse=lambda name, raw: parse_choice(name, raw, REDIS_TYPES),
    ),
    "cluster_nodes": about(
        "FEAST_REDIS_CLUSTER_NODES",
        "redis_cluster: comma-separated host:port startup nodes; empty = host:port",
        parse=parse_list,
    ),
    "tls_ca_file": about(
        "FEAST_REDIS_SSL_CA_CERTS", "PEM CA bundle that signed Redis' certificate"
    ),
    "tls_cert_file": about("FEAST_REDIS_SSL_CERTFILE", "PEM client certificate for Redis TLS"),
    "tls_key_file": about("FEAST_REDIS_SSL_KEYFILE", "PEM client key for Redis TLS"),
}
"""Every ``FEAST_REDIS_*`` variable, declared once: ``RedisAddress.from_env`` reads them, and
the server's settings declare their fields with this same metadata (name, doc, parser)."""


def _env(key: str) -> str:
    name: str = REDIS_VARIABLES[key]["env"]
    return name


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
            _env("tls_ca_file"): self.tls_ca_file,
            _env("tls_cert_file"): self.tls_cert_file,
            _env("tls_key_file"): self.tls_key_file,
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
            _env("host"): self.host,
            _env("port"): str(self.port),
            _env("password"): self.password,
            _env("tls"): "true" if self.tls else "false",
            _env("type"): "redis_cluster" if self.cluster else "redis",
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
        v = REDIS_VARIABLES
        host = read_variable(v["host"], environ, "")
        if not host:
            return None
        address = cls(
            host=host,
            port=read_variable(v["port"], environ, 6379, "int"),
            password=read_variable(v["password"], environ, ""),
            tls=read_variable(v["tls"], environ, False, "bool"),
            cluster=read_variable(v["type"], environ, "redis") == "redis_cluster",
            tls_ca_file=read_variable(v["tls_ca_file"], environ, ""),
            tls_cert_file=read_variable(v["tls_cert_file"], environ, ""),
            tls_key_file=read_variable(v["tls_key_file"], environ, ""),
        )
        address.check_feast_connection_string()
        return address
