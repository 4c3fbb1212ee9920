"""Server configuration: one frozen dataclass, the only module that reads environment variables.

What enters: an environment mapping (``ServerConfig.from_env(os.environ)``) and, in
``python -m server``, command-line flags layered on top (``with_overrides``). What leaves: a
validated ``ServerConfig``; an invalid value raises ``ConfigError`` naming the variable, before
anything starts. ``to_env()`` is the inverse of ``from_env``: the environment every launcher of
``python -m server`` (devstack, benchmarks, tests) hands its child.

Each field carries its environment variable and a one-line doc in its metadata; the CLI builds
``--help`` from the same metadata, so the two never drift apart.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from canonical import contract
from core.settings import SettingsError
from offline_store.connection import PostgresAddress
from online_store.address import RedisAddress
from online_store.cluster import parse_node
from server.errors import ConfigError

SYMBOL_PATTERN = re.compile(r"[A-Z0-9_]{1,16}")
"""A symbol is 1-16 characters of [A-Z0-9_] (the proto documents the same rule)."""


def _about(env: str, doc: str) -> dict[str, Any]:
    """Field metadata: its environment variable and one-line doc (also the --help text)."""
    return {"env": env, "doc": doc}


def _secret(env: str, doc: str) -> dict[str, Any]:
    """A secret: read from its environment variable only (no flag: argv is visible in ``ps``),
    never in a repr, a log line or ``--help``'s defaults."""
    return {"env": env, "doc": doc, "secret": True}


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to start; build it once at the entry point."""

    redis_host: str = field(
        default="127.0.0.1", metadata=_about("FEAST_REDIS_HOST", "Redis (Feast online store) host")
    )
    redis_port: int = field(default=6379, metadata=_about("FEAST_REDIS_PORT", "Redis TCP port"))
    redis_password: str = field(
        default="",
        repr=False,  # never in a log line or a traceback
        metadata=_secret("FEAST_REDIS_PASSWORD", "Redis password; empty for none"),
    )
    redis_tls: bool = field(
        default=False, metadata=_about("FEAST_REDIS_SSL", "connect to Redis over TLS (true/false)")
    )
    redis_db: int = field(
        default=0, metadata=_about("FEAST_REDIS_DB", "Redis logical database number")
    )
    redis_type: str = field(
        default="redis",
        metadata=_about(
            "FEAST_REDIS_TYPE", "redis (one server) or redis_cluster (Feast's redis_type)"
        ),
    )
    redis_cluster_nodes: tuple[str, ...] = field(
        default=(),
        metadata=_about(
            "FEAST_REDIS_CLUSTER_NODES",
            "redis_cluster: comma-separated host:port startup nodes; empty = host:port",
        ),
    )
    redis_timeout_ms: float = field(
        default=5.0,
        metadata=_about("USDCOP_REDIS_TIMEOUT_MS", "bound on one Redis read, ms; then fallback"),
    )
    bind_address: str = field(
        default="127.0.0.1", metadata=_about("USDCOP_BIND_ADDRESS", "address the server binds")
    )
    port: int = field(
        default=50051, metadata=_about("USDCOP_PORT", "gRPC port; 0 picks a free one")
    )
    cache_ttl_ms: float = field(
        default=1000.0,
        metadata=_about("USDCOP_CACHE_TTL_MS", "observation cache TTL per symbol, ms; 0 disables"),
    )
    cache_tracking: bool = field(
        default=True,
        metadata=_about(
            "USDCOP_CACHE_TRACKING",
            "Redis push invalidation (CLIENT TRACKING) keeps the cache exact (true/false)",
        ),
    )
    cache_tracked_ttl_ms: float = field(
        default=60_000.0,
        metadata=_about(
            "USDCOP_CACHE_TRACKED_TTL_MS", "cache entry lifetime while invalidation is healthy, ms"
        ),
    )
    batch_max_symbols: int = field(
        default=64,
        metadata=_about("USDCOP_BATCH_MAX_SYMBOLS", "most symbols one GetObservations may ask"),
    )
    watch_max_subscribers: int = field(
        default=1000,
        metadata=_about(
            "USDCOP_WATCH_MAX_SUBSCRIBERS",
            "WatchObservations streams per process (outside USDCOP_MAX_CONCURRENT_RPCS)",
        ),
    )
    watch_heartbeat_ms: float = field(
        default=5000.0,
        metadata=_about(
            "USDCOP_WATCH_HEARTBEAT_MS", "default heartbeat period of a quiet watch stream, ms"
        ),
    )
    symbols: tuple[str, ...] = field(
        default=("USDCOP",),
        metadata=_about("USDCOP_SYMBOLS", "comma-separated symbols this server serves"),
    )
    data_dir: Path = field(
        default=Path("data"),
        metadata=_about("USDCOP_DATA_DIR", "data folder whose raw/ files feed the fallback"),
    )
    fallback_refresh_s: float = field(
        default=5.0,
        metadata=_about("USDCOP_FALLBACK_REFRESH_S", "fallback's raw-file poll period, s"),
    )
    fallback_source: str = field(
        default="files",
        metadata=_about(
            "USDCOP_FALLBACK_SOURCE",
            "where the fallback reads its raw window: files (USDCOP_DATA_DIR) or postgres",
        ),
    )
    postgres_host: str = field(
        default="127.0.0.1",
        metadata=_about("POSTGRES_HOST", "PostgreSQL offline store host (fallback source)"),
    )
    postgres_port: int = field(
        default=5432, metadata=_about("POSTGRES_PORT", "PostgreSQL TCP port")
    )
    postgres_db: str = field(
        default="usdcop", metadata=_about("POSTGRES_DB", "PostgreSQL database")
    )
    postgres_user: str = field(
        default="postgres", metadata=_about("POSTGRES_USER", "PostgreSQL role")
    )
    postgres_password: str = field(
        default="",
        repr=False,
        metadata=_secret("POSTGRES_PASSWORD", "PostgreSQL password; empty for none"),
    )
    breaker_failure_threshold: int = field(
        default=3,
        metadata=_about("USDCOP_BREAKER_FAILURE_THRESHOLD", "Redis failures in a row that open it"),
    )
    breaker_open_ms: float = field(
        default=1000.0,
        metadata=_about("USDCOP_BREAKER_OPEN_MS", "an open breaker skips Redis this long, ms"),
    )
    workers: int = field(
        default=1, metadata=_about("USDCOP_WORKERS", "processes sharing the port (SO_REUSEPORT)")
    )
    event_loop: str = field(
        default="uvloop",
        metadata=_about(
            "USDCOP_EVENT_LOOP", "uvloop (lower latency; see server/README.md) or asyncio"
        ),
    )
    grace_period_s: float = field(
        default=5.0,
        metadata=_about("USDCOP_GRACE_PERIOD_S", "time in-flight calls get at shutdown, s"),
    )
    project: str = field(
        default=contract.PROJECT,
        metadata=_about("USDCOP_FEAST_PROJECT", "Feast project the Redis keys belong to"),
    )
    state_events_max_len: int = field(
        default=1_000_000,
        metadata=_about(
            "USDCOP_STATE_EVENTS_MAX_LEN",
            "applied pushes kept in Redis until the pipeline records them offline (the oldest "
            "beyond this are dropped; ~100 B each)",
        ),
    )
    served_log: bool = field(
        default=True,
        metadata=_about(
            "USDCOP_SERVED_LOG",
            "log every answer (values, sources, event times) to Redis for the skew check, off "
            "the request path (true/false)",
        ),
    )
    served_log_max_len: int = field(
        default=1_000_000,
        metadata=_about(
            "USDCOP_SERVED_LOG_MAX_LEN",
            "served answers kept in Redis until the pipeline records them (~250 B each)",
        ),
    )
    metrics_port: int = field(
        default=0,
        metadata=_about("USDCOP_METRICS_PORT", "Prometheus /metrics HTTP port; 0 = no metrics"),
    )
    metrics_dir: str = field(
        default="",
        metadata=_about(
            "USDCOP_METRICS_DIR", "with --workers N: folder of per-worker snapshots; empty = temp"
        ),
    )
    redis_memory_sample_s: float = field(
        default=10.0,
        metadata=_about("USDCOP_REDIS_MEMORY_SAMPLE_S", "period of the INFO memory sample, s"),
    )
    log_format: str = field(
        default="text",
        metadata=_about("USDCOP_LOG_FORMAT", "log lines as 'text' or 'json' (one object a line)"),
    )
    # --- faults and security (server/security.py) ---
    max_clock_skew_s: float = field(
        default=5.0,
        metadata=_about(
            "USDCOP_MAX_CLOCK_SKEW_S",
            "event times further in the future than this are refused (pushes) or not served "
            "(stored views), s; also how long a future-dated push can hold back later ones",
        ),
    )
    max_concurrent_rpcs: int = field(
        default=1000,
        metadata=_about(
            "USDCOP_MAX_CONCURRENT_RPCS",
            "unary calls in progress per process; more get RESOURCE_EXHAUSTED; 0 = unbounded "
            "(watch streams have their own bound, health checks none)",
        ),
    )
    drain_period_s: float = field(
        default=1.0,
        metadata=_about(
            "USDCOP_DRAIN_PERIOD_S",
            "at shutdown, NOT_SERVING but still accepting calls this long, s",
        ),
    )
    reflection: bool = field(
        default=True,
        metadata=_about("USDCOP_REFLECTION", "serve gRPC server reflection (true/false)"),
    )
    tls_cert_file: str = field(
        default="",
        metadata=_about("USDCOP_TLS_CERT_FILE", "PEM certificate chain: serve gRPC over TLS"),
    )
    tls_key_file: str = field(
        default="", metadata=_about("USDCOP_TLS_KEY_FILE", "PEM private key of tls_cert_file")
    )
    tls_client_ca_file: str = field(
        default="",
        metadata=_about(
            "USDCOP_TLS_CLIENT_CA_FILE", "PEM CA bundle: require client certificates (mTLS)"
        ),
    )
    push_allowed_clients: tuple[str, ...] = field(
        default=(),
        metadata=_about(
            "USDCOP_PUSH_ALLOWED_CLIENTS",
            "comma-separated client certificate subject CNs/SANs allowed to PushState",
        ),
    )
    push_token: str = field(
        default="",
        repr=False,
        metadata=_secret(
            "USDCOP_PUSH_TOKEN", "bearer token that authorizes PushState (authorization metadata)"
        ),
    )
    redis_tls_ca_file: str = field(
        default="",
        metadata=_about("FEAST_REDIS_SSL_CA_CERTS", "PEM CA bundle that signed Redis' certificate"),
    )
    redis_tls_cert_file: str = field(
        default="",
        metadata=_about("FEAST_REDIS_SSL_CERTFILE", "PEM client certificate for Redis TLS"),
    )
    redis_tls_key_file: str = field(
        default="", metadata=_about("FEAST_REDIS_SSL_KEYFILE", "PEM client key for Redis TLS")
    )

    def __post_init__(self) -> None:
        _validate(self)
        try:
            self.redis_address  # noqa: B018 - the address checks its own rules once, here
        except SettingsError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def redis_address(self) -> RedisAddress:
        """The online store's address (the one type every settings model holds)."""
        return RedisAddress(
            host=self.redis_host,
            port=self.redis_port,
            password=self.redis_password,
            tls=self.redis_tls,
            cluster=self.redis_type == "redis_cluster",
            tls_ca_file=self.redis_tls_ca_file,
            tls_cert_file=self.redis_tls_cert_file,
            tls_key_file=self.redis_tls_key_file,
            db=self.redis_db,
            startup_nodes=self.cluster_startup_nodes,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServerConfig:
        """Defaults overridden by whichever of the fields' environment variables are set."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is not None and raw.strip() != "":
                values[f.name] = parse_field(f.name, raw, source=f.metadata["env"])
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """Every field as its environment variable: the inverse of ``from_env``
        (``ServerConfig.from_env(config.to_env()) == config``). Launchers of
        ``python -m server`` pass this instead of retyping variable names."""
        return {
            f.metadata["env"]: format_field(getattr(self, f.name)) for f in dataclasses.fields(self)
        }

    def fallback_postgres(self) -> PostgresAddress | None:
        """The database the fallback reads (``fallback_source=postgres``), else None."""
        if self.fallback_source != "postgres":
            return None
        return PostgresAddress(
            host=self.postgres_host,
            port=self.postgres_port,
            database=self.postgres_db,
            user=self.postgres_user,
            password=self.postgres_password,
        )

    def with_overrides(self, **values: Any) -> ServerConfig:
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **values)

    @property
    def cluster_startup_nodes(self) -> tuple[tuple[str, int], ...]:
        """redis_cluster: the startup nodes as (host, port), host:port when none are listed."""
        listed = self.redis_cluster_nodes or (f"{self.redis_host}:{self.redis_port}",)
        return tuple(parse_node(node) for node in listed)

    @property
    def redis_timeout_s(self) -> float:
        return self.redis_timeout_ms / 1000.0

    @property
    def cache_ttl_ns(self) -> int:
        return int(self.cache_ttl_ms * 1_000_000)

    @property
    def cache_tracked_ttl_ns(self) -> int:
        return int(self.cache_tracked_ttl_ms * 1_000_000)


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _parse_symbols(raw: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in raw.split(",") if s.strip())


def _parse_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str.strip,
    "int": int,
    "float": _parse_float,
    "bool": _parse_bool,
    "tuple[str, ...]": _parse_symbols,
    "Path": Path,
}


def format_field(value: object) -> str:
    """A field's value as the text its parser reads back (``to_env``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    if isinstance(value, float):
        return repr(value)  # shortest text that parses back to the same float
    return str(value)


def parse_field(name: str, raw: str, *, source: str) -> Any:
    """Parse one field's text value (from ``source``: an env var or a flag) or raise ConfigError."""
    type_name = {f.name: f.type for f in dataclasses.fields(ServerConfig)}[name]
    parser = _PARSERS[str(type_name)]
    try:
        return parser(raw)
    except ValueError:
        raise ConfigError(f"{source}={raw!r} is not a valid {type_name}") from None


def _validate(config: ServerConfig) -> None:
    def fail(name: str, why: str) -> None:
        meta = next(f.metadata for f in dataclasses.fields(config) if f.name == name)
        shown = "<secret>" if meta.get("secret") else repr(getattr(config, name))
        raise ConfigError(f"{name} ({meta['env']}) {why}: got {shown}")

    if not 0 < config.redis_port < 65536:
        fail("redis_port", "must be a TCP port 1-65535")
    if not 0 <= config.port < 65536:
        fail("port", "must be a TCP port 0-65535")
    if config.redis_type not in ("redis", "redis_cluster"):
        fail("redis_type", "must be redis or redis_cluster")
    if config.redis_type == "redis_cluster" and config.redis_db != 0:
        fail("redis_db", "must be 0 with redis_cluster (a cluster has one database)")
    for node in config.redis_cluster_nodes:
        try:
            parse_node(node)
        except ValueError:
            fail("redis_cluster_nodes", f"has {node!r}; expected host:port")
    if config.redis_db < 0:
        fail("redis_db", "must be >= 0")
    if not config.redis_timeout_ms > 0:
        fail("redis_timeout_ms", "must be > 0")
    if config.cache_ttl_ms < 0:
        fail("cache_ttl_ms", "must be >= 0 (0 disables the cache)")
    if config.cache_tracked_ttl_ms < 0:
        fail("cache_tracked_ttl_ms", "must be >= 0 (below cache_ttl_ms it is cache_ttl_ms)")
    if config.batch_max_symbols < 1:
        fail("batch_max_symbols", "must be >= 1")
    if config.watch_max_subscribers < 0:
        fail("watch_max_subscribers", "must be >= 0 (0 turns WatchObservations away)")
    if not 10 <= config.watch_heartbeat_ms <= 3_600_000:
        fail("watch_heartbeat_ms", "must be in [10, 3600000]")
    if not config.symbols:
        fail("symbols", "must name at least one symbol")
    for symbol in config.symbols:
        if not SYMBOL_PATTERN.fullmatch(symbol):
            fail("symbols", f"has {symbol!r}; a symbol must be 1-16 characters of [A-Z0-9_]")
    if config.fallback_source not in ("files", "postgres"):
        fail("fallback_source", "must be files or postgres")
    if not 0 < config.postgres_port < 65536:
        fail("postgres_port", "must be a TCP port 1-65535")
    if not config.fallback_refresh_s > 0:
        fail("fallback_refresh_s", "must be > 0")
    if config.breaker_failure_threshold < 1:
        fail("breaker_failure_threshold", "must be >= 1")
    if config.breaker_open_ms < 0:
        fail("breaker_open_ms", "must be >= 0")
    if config.workers < 1:
        fail("workers", "must be >= 1")
    if config.event_loop not in ("uvloop", "asyncio"):
        fail("event_loop", "must be uvloop or asyncio")
    if config.grace_period_s < 0:
        fail("grace_period_s", "must be >= 0")
    if not config.bind_address:
        fail("bind_address", "must not be empty")
    if not config.project:
        fail("project", "must not be empty")
    if config.state_events_max_len < 1:
        fail("state_events_max_len", "must be >= 1")
    if config.served_log_max_len < 1:
        fail("served_log_max_len", "must be >= 1")
    if not 0 <= config.metrics_port < 65536:
        fail("metrics_port", "must be a TCP port 1-65535, or 0 for no metrics")
    if config.metrics_port and config.metrics_port == config.port:
        fail("metrics_port", "must differ from the gRPC port")
    if not config.redis_memory_sample_s > 0:
        fail("redis_memory_sample_s", "must be > 0")
    if config.log_format not in ("text", "json"):
        fail("log_format", "must be 'text' or 'json'")
    _validate_security(config, fail)


def _validate_security(config: ServerConfig, fail: Callable[[str, str], None]) -> None:
    if config.max_clock_skew_s < 0:
        fail("max_clock_skew_s", "must be >= 0")
    if config.max_concurrent_rpcs < 0:
        fail("max_concurrent_rpcs", "must be >= 0 (0: unbounded)")
    if config.drain_period_s < 0:
        fail("drain_period_s", "must be >= 0")
    if bool(config.tls_cert_file) != bool(config.tls_key_file):
        fail("tls_cert_file", "and tls_key_file must be set together")
    if config.tls_client_ca_file and not config.tls_cert_file:
        fail("tls_client_ca_file", "needs tls_cert_file/tls_key_file (mTLS is TLS first)")
    if config.push_allowed_clients and not config.tls_client_ca_file:
        fail("push_allowed_clients", "needs tls_client_ca_file (client certificates)")
    if bool(config.redis_tls_cert_file) != bool(config.redis_tls_key_file):
        fail("redis_tls_cert_file", "and redis_tls_key_file must be set together")
    uses_redis_tls_files = (
        config.redis_tls_ca_file or config.redis_tls_cert_file or config.redis_tls_key_file
    )
    if uses_redis_tls_files and not config.redis_tls:
        fail("redis_tls", "must be true when Redis TLS files are set")
    for name in (
        "tls_cert_file",
        "tls_key_file",
        "tls_client_ca_file",
        "redis_tls_ca_file",
        "redis_tls_cert_file",
        "redis_tls_key_file",
    ):
        path = getattr(config, name)
        if path and not Path(path).is_file():
            fail(name, "is not a readable file")


OTHER_PROJECT_VARIABLES = frozenset(
    {
        # pipeline.settings and the DAGs' settings (tests/unit/server keep this list in step)
        "USDCOP_FEATURE_REPO", "USDCOP_HISTORY_DAYS", "USDCOP_SEED", "USDCOP_LIVE_TICK_S",
        "USDCOP_LIVE_CATCHUP_BARS", "USDCOP_METRICS_TEXTFILE_DIR", "USDCOP_PROJECT_DIR",
        "USDCOP_AGENT_POLICY",
        "USDCOP_PROJECT_PYTHON", "USDCOP_SCHEDULE_CRON", "USDCOP_L1_SENSOR_TIMEOUT_S",
        "USDCOP_SENSOR_POKE_S", "USDCOP_TASK_RETRIES", "USDCOP_RETRY_DELAY_S",
        "USDCOP_MAX_RETRY_DELAY_S", "FEAST_OFFLINE_STORE_TYPE", "FEAST_REDIS_TLS_OPTIONS",
        "POSTGRES_SSLMODE",
        # clients (the guide's API, the agent) and the server's own launchers
        "USDCOP_TARGET", "USDCOP_METRICS_DIR", "USDCOP_SERVER_PID", "USDCOP_EXPECTED",
    }
)  # fmt: skip
"""This project's variables that other commands read (the server's own come from its fields)."""
_CHECKED_PREFIXES = ("USDCOP_", "POSTGRES_", "FEAST_REDIS_", "FEAST_OFFLINE_")
"""Variables under these prefixes are this project's; Feast's own FEAST_* names are left alone."""


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """(name, closest known name or None) of every set variable under this project's prefixes
    that nothing reads: a misspelt ``USDCOP_MAX_CONCURENT_RPCS`` would otherwise be ignored."""
    import difflib

    known = {f.metadata["env"] for f in fields(ServerConfig)} | OTHER_PROJECT_VARIABLES
    found = []
    for name in sorted(environ):
        if name.startswith(_CHECKED_PREFIXES) and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
            found.append((name, close[0] if close else None))
    return found
