"""Server configuration: one frozen dataclass, the only module that reads environment variables.

What enters: an environment mapping (``ServerConfig.from_env(os.environ)``) and, in
``python -m server``, command-line flags layered on top (``with_overrides``). What leaves: a
validated ``ServerConfig``; an invalid value raises ``ConfigError`` (a ``SettingsError``, the
root of every settings model) naming the variable or flag, before anything starts. ``to_env()``
is the inverse of ``from_env``: the environment every launcher of ``python -m server``
(devstack, benchmarks, tests) hands its child.

Each field carries its environment variable and a one-line doc in its metadata
(``core.settings.about``; a secret, ``core.settings.secret``, has no flag); the parsers,
``from_env``/``to_env``, the CLI's flags and ``--help`` are ``core.settings``' machinery over
that metadata, shared with the pipeline and the DAGs. The checks below are one concern each.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from canonical import contract
from core.settings import (
    DATA_DIR_VARIABLE,
    METRICS_PORT_VARIABLE,
    SERVER_PORT_VARIABLE,
    SYMBOLS_VARIABLE,
    SettingsError,
    about,
    env_of,
    env_values,
    flag_values,
    parse_choice,
    replaced,
    secret,
    settings_fields,
    shared,
)
from core.settings import SYMBOL_PATTERN as SYMBOL_PATTERN  # noqa: PLC0414 (server.service's)
from core.settings import unknown_variables as find_unknown_variables
from offline_store.connection import POSTGRES_VARIABLES as _POSTGRES
from offline_store.connection import PostgresAddress
from online_store.address import REDIS_TYPES, RedisAddress
from online_store.address import REDIS_VARIABLES as _REDIS
from online_store.cluster import parse_node
from server.errors import ConfigError

_FALLBACK_SOURCES = ("file", "postgres")
_FALLBACK_SOURCE_ALIASES = {"files": "file"}
"""``files``, the spelling before ``FEAST_OFFLINE_STORE_TYPE``'s ``file`` was shared, still
reads as ``file`` (compatibility only; the documented spelling is ``file``)."""
_EVENT_LOOPS = ("uvloop", "asyncio")
_LOG_FORMATS = ("text", "json")


def _choice(
    choices: tuple[str, ...], aliases: dict[str, str] | None = None
) -> Callable[[str, str], str]:
    return lambda name, raw: parse_choice(name, raw, choices, aliases)


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to start; build it once at the entry point."""

    # The online store's variables are declared once, with its address (online_store.address).
    redis_host: str = field(default="127.0.0.1", metadata=_REDIS["host"])
    redis_port: int = field(default=6379, metadata=_REDIS["port"])
    redis_password: str = field(
        default="",
        repr=False,  # never in a log line or a traceback
        metadata=_REDIS["password"],
    )
    redis_tls: bool = field(default=False, metadata=_REDIS["tls"])
    redis_db: int = field(default=0, metadata=_REDIS["db"])
    redis_type: str = field(default="redis", metadata=_REDIS["type"])
    redis_cluster_nodes: tuple[str, ...] = field(default=(), metadata=_REDIS["cluster_nodes"])
    redis_timeout_ms: float = field(
        default=5.0,
        metadata=about("USDCOP_REDIS_TIMEOUT_MS", "bound on one Redis read, ms; then fallback"),
    )
    bind_address: str = field(
        default="127.0.0.1", metadata=about("USDCOP_BIND_ADDRESS", "address the server binds")
    )
    port: int = field(default=50051, metadata=SERVER_PORT_VARIABLE)
    cache_ttl_ms: float = field(
        default=1000.0,
        metadata=about("USDCOP_CACHE_TTL_MS", "observation cache TTL per symbol, ms; 0 disables"),
    )
    cache_tracking: bool = field(
        default=True,
        metadata=about(
            "USDCOP_CACHE_TRACKING",
            "Redis push invalidation (CLIENT TRACKING) keeps the cache exact (true/false)",
        ),
    )
    cache_tracked_ttl_ms: float = field(
        default=60_000.0,
        metadata=about(
            "USDCOP_CACHE_TRACKED_TTL_MS", "cache entry lifetime while invalidation is healthy, ms"
        ),
    )
    batch_max_symbols: int = field(
        default=64,
        metadata=about("USDCOP_BATCH_MAX_SYMBOLS", "most symbols one GetObservations may ask"),
    )
    watch_max_subscribers: int = field(
        default=1000,
        metadata=about(
            "USDCOP_WATCH_MAX_SUBSCRIBERS",
            "WatchObservations streams per process (outside USDCOP_MAX_CONCURRENT_RPCS)",
        ),
    )
    watch_heartbeat_ms: float = field(
        default=5000.0,
        metadata=about(
            "USDCOP_WATCH_HEARTBEAT_MS", "default heartbeat period of a quiet watch stream, ms"
        ),
    )
    symbols: tuple[str, ...] = field(
        default=("USDCOP",),
        metadata=shared(SYMBOLS_VARIABLE, doc="comma-separated symbols this server serves"),
    )
    data_dir: Path = field(
        default=Path("data"),
        metadata=shared(DATA_DIR_VARIABLE, doc="data folder whose raw/ files feed the fallback"),
    )
    fallback_refresh_s: float = field(
        default=5.0,
        metadata=about("USDCOP_FALLBACK_REFRESH_S", "fallback's raw-file poll period, s"),
    )
    fallback_source: str = field(
        default="file",
        metadata=about(
            "USDCOP_FALLBACK_SOURCE",
            "where the fallback reads its raw window: file (USDCOP_DATA_DIR's raw/ files; "
            "'files' is read as file) or postgres",
            parse=_choice(_FALLBACK_SOURCES, _FALLBACK_SOURCE_ALIASES),
        ),
    )
    # The offline store's variables are declared once, with its address (offline_store).
    postgres_host: str = field(
        default="127.0.0.1",
        metadata=shared(_POSTGRES["host"], doc="PostgreSQL offline store host (fallback source)"),
    )
    postgres_port: int = field(default=5432, metadata=_POSTGRES["port"])
    postgres_db: str = field(default="usdcop", metadata=_POSTGRES["database"])
    postgres_user: str = field(default="postgres", metadata=_POSTGRES["user"])
    postgres_password: str = field(default="", repr=False, metadata=_POSTGRES["password"])
    breaker_failure_threshold: int = field(
        default=3,
        metadata=about("USDCOP_BREAKER_FAILURE_THRESHOLD", "Redis failures in a row that open it"),
    )
    breaker_open_ms: float = field(
        default=1000.0,
        metadata=about("USDCOP_BREAKER_OPEN_MS", "an open breaker skips Redis this long, ms"),
    )
    workers: int = field(
        default=1, metadata=about("USDCOP_WORKERS", "processes sharing the port (SO_REUSEPORT)")
    )
    event_loop: str = field(
        default="uvloop",
        metadata=about(
            "USDCOP_EVENT_LOOP",
            "uvloop (lower latency; see server/README.md) or asyncio",
            parse=_choice(_EVENT_LOOPS),
        ),
    )
    grace_period_s: float = field(
        default=5.0,
        metadata=about("USDCOP_GRACE_PERIOD_S", "time in-flight calls get at shutdown, s"),
    )
    project: str = field(
        default=contract.PROJECT,
        metadata=about("USDCOP_FEAST_PROJECT", "Feast project the Redis keys belong to"),
    )
    state_events_max_len: int = field(
        default=1_000_000,
        metadata=about(
            "USDCOP_STATE_EVENTS_MAX_LEN",
            "applied pushes kept in Redis until the pipeline records them offline (the oldest "
            "beyond this are dropped; ~100 B each)",
        ),
    )
    served_log: bool = field(
        default=True,
        metadata=about(
            "USDCOP_SERVED_LOG",
            "log every answer (values, sources, event times) to Redis for the skew check, off "
            "the request path (true/false)",
        ),
    )
    served_log_max_len: int = field(
        default=1_000_000,
        metadata=about(
            "USDCOP_SERVED_LOG_MAX_LEN",
            "served answers kept in Redis until the pipeline records them (~250 B each)",
        ),
    )
    metrics_port: int = field(
        default=0,
        metadata=shared(METRICS_PORT_VARIABLE, doc="Prometheus /metrics HTTP port; 0 = no metrics"),
    )
    metrics_dir: str = field(
        default="",
        metadata=about(
            "USDCOP_METRICS_DIR", "with --workers N: folder of per-worker snapshots; empty = temp"
        ),
    )
    redis_memory_sample_s: float = field(
        default=10.0,
        metadata=about("USDCOP_REDIS_MEMORY_SAMPLE_S", "period of the INFO memory sample, s"),
    )
    log_format: str = field(
        default="text",
        metadata=about(
            "USDCOP_LOG_FORMAT",
            "log lines as 'text' or 'json' (one object a line)",
            parse=_choice(_LOG_FORMATS),
        ),
    )
    # --- faults and security (server/security.py) ---
    max_clock_skew_s: float = field(
        default=5.0,
        metadata=about(
            "USDCOP_MAX_CLOCK_SKEW_S",
            "event times further in the future than this are refused (pushes) or not served "
            "(stored views), s; also how long a future-dated push can hold back later ones",
        ),
    )
    max_concurrent_rpcs: int = field(
        default=1000,
        metadata=about(
            "USDCOP_MAX_CONCURRENT_RPCS",
            "unary calls in progress per process; more get RESOURCE_EXHAUSTED; 0 = unbounded "
            "(watch streams have their own bound, health checks none)",
        ),
    )
    drain_period_s: float = field(
        default=1.0,
        metadata=about(
            "USDCOP_DRAIN_PERIOD_S",
            "at shutdown, NOT_SERVING but still accepting calls this long, s",
        ),
    )
    reflection: bool = field(
        default=True,
        metadata=about("USDCOP_REFLECTION", "serve gRPC server reflection (true/false)"),
    )
    tls_cert_file: str = field(
        default="",
        metadata=about("USDCOP_TLS_CERT_FILE", "PEM certificate chain: serve gRPC over TLS"),
    )
    tls_key_file: str = field(
        default="", metadata=about("USDCOP_TLS_KEY_FILE", "PEM private key of tls_cert_file")
    )
    tls_client_ca_file: str = field(
        default="",
        metadata=about(
            "USDCOP_TLS_CLIENT_CA_FILE", "PEM CA bundle: require client certificates (mTLS)"
        ),
    )
    push_allowed_clients: tuple[str, ...] = field(
        default=(),
        metadata=about(
            "USDCOP_PUSH_ALLOWED_CLIENTS",
            "comma-separated client certificate subject CNs/SANs allowed to PushState",
        ),
    )
    push_token: str = field(
        default="",
        repr=False,
        metadata=secret(
            "USDCOP_PUSH_TOKEN", "bearer token that authorizes PushState (authorization metadata)"
        ),
    )
    redis_tls_ca_file: str = field(default="", metadata=_REDIS["tls_ca_file"])
    redis_tls_cert_file: str = field(default="", metadata=_REDIS["tls_cert_file"])
    redis_tls_key_file: str = field(default="", metadata=_REDIS["tls_key_file"])

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
        """Defaults overridden by whichever of the fields' environment variables are set
        (empty counts as unset)."""
        with config_errors():
            return cls(**env_values(cls, environ))

    def to_env(self) -> dict[str, str]:
        """Every field as its environment variable: the inverse of ``from_env``
        (``ServerConfig.from_env(config.to_env()) == config``). Launchers of
        ``python -m server`` pass this instead of retyping variable names."""
        return env_of(self)

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
        """A copy with some fields replaced (validated again); None values are ignored."""
        return replaced(self, values)

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


@contextmanager
def config_errors() -> Iterator[None]:
    """Any SettingsError of a parser raised as ConfigError (a SettingsError itself), which the
    server's callers catch."""
    try:
        yield
    except ConfigError:
        raise
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The fields whose ``python -m server`` flag was given, parsed; ConfigError names the flag."""
    with config_errors():
        return flag_values(args, settings_fields(ServerConfig))


Problems = Iterator[tuple[str, str]]
"""(field name, what is wrong with its value) of each invalid field a check finds."""


def _validate(config: ServerConfig) -> None:
    """The first problem any check finds, as ConfigError naming the field and its variable."""
    for check in _CHECKS:
        for name, why in check(config):
            meta = next(f.metadata for f in fields(config) if f.name == name)
            shown = "<secret>" if meta.get("secret") else repr(getattr(config, name))
            raise ConfigError(f"{name} ({meta['env']}) {why}: got {shown}")


def _tcp_port(config: ServerConfig, name: str, *, zero: str = "") -> Problems:
    """A TCP port 1-65535; with ``zero`` (what 0 means), 0 too."""
    port = getattr(config, name)
    if not (0 if zero else 1) <= port < 65536:
        yield name, "must be a TCP port 1-65535" + (f", or 0 {zero}" if zero else "")


def _at_least(config: ServerConfig, low: float, *names: str, why: str = "") -> Problems:
    for name in names:
        if getattr(config, name) < low:
            yield name, f"must be >= {low:g}" + (f" ({why})" if why else "")


def _positive(config: ServerConfig, *names: str) -> Problems:
    for name in names:
        if not getattr(config, name) > 0:
            yield name, "must be > 0"


def _one_of(config: ServerConfig, name: str, choices: tuple[str, ...]) -> Problems:
    if getattr(config, name) not in choices:
        yield name, "must be " + " or ".join(choices)


def _check_redis(config: ServerConfig) -> Problems:
    yield from _tcp_port(config, "redis_port")
    yield from _one_of(config, "redis_type", REDIS_TYPES)
    if config.redis_type == "redis_cluster" and config.redis_db != 0:
        yield "redis_db", "must be 0 with redis_cluster (a cluster has one database)"
    for node in config.redis_cluster_nodes:
        try:
            parse_node(node)
        except ValueError:
            yield "redis_cluster_nodes", f"has {node!r}; expected host:port"
    yield from _at_least(config, 0, "redis_db")
    yield from _positive(config, "redis_timeout_ms", "redis_memory_sample_s")


def _check_serving(config: ServerConfig) -> Problems:
    yield from _tcp_port(config, "port", zero="(a free one)")
    if not config.bind_address:
        yield "bind_address", "must not be empty"
    yield from _at_least(config, 1, "workers", "batch_max_symbols")
    yield from _one_of(config, "event_loop", _EVENT_LOOPS)
    yield from _at_least(config, 0, "grace_period_s", "drain_period_s", "max_clock_skew_s")
    yield from _at_least(config, 0, "max_concurrent_rpcs", why="0: unbounded")
    if not config.project:
        yield "project", "must not be empty"


def _check_symbols(config: ServerConfig) -> Problems:
    if not config.symbols:
        yield "symbols", "must name at least one symbol"
    for symbol in config.symbols:
        if not SYMBOL_PATTERN.fullmatch(symbol):
            yield "symbols", f"has {symbol!r}; a symbol must be 1-16 characters of [A-Z0-9_]"


def _check_cache_and_watch(config: ServerConfig) -> Problems:
    yield from _at_least(config, 0, "cache_ttl_ms", why="0 disables the cache")
    yield from _at_least(
        config, 0, "cache_tracked_ttl_ms", why="below cache_ttl_ms it is cache_ttl_ms"
    )
    yield from _at_least(config, 0, "watch_max_subscribers", why="0 turns WatchObservations away")
    if not 10 <= config.watch_heartbeat_ms <= 3_600_000:
        yield "watch_heartbeat_ms", "must be in [10, 3600000]"


def _check_fallback(config: ServerConfig) -> Problems:
    yield from _one_of(config, "fallback_source", _FALLBACK_SOURCES)
    yield from _tcp_port(config, "postgres_port")
    yield from _positive(config, "fallback_refresh_s")
    yield from _at_least(config, 1, "breaker_failure_threshold")
    yield from _at_least(config, 0, "breaker_open_ms")


def _check_logs_and_metrics(config: ServerConfig) -> Problems:
    yield from _at_least(config, 1, "state_events_max_len", "served_log_max_len")
    yield from _tcp_port(config, "metrics_port", zero="for no metrics")
    if config.metrics_port and config.metrics_port == config.port:
        yield "metrics_port", "must differ from the gRPC port"
    yield from _one_of(config, "log_format", _LOG_FORMATS)


def _check_tls(config: ServerConfig) -> Problems:
    if bool(config.tls_cert_file) != bool(config.tls_key_file):
        yield "tls_cert_file", "and tls_key_file must be set together"
    if config.tls_client_ca_file and not config.tls_cert_file:
        yield "tls_client_ca_file", "needs tls_cert_file/tls_key_file (mTLS is TLS first)"
    if config.push_allowed_clients and not config.tls_client_ca_file:
        yield "push_allowed_clients", "needs tls_client_ca_file (client certificates)"
    if bool(config.redis_tls_cert_file) != bool(config.redis_tls_key_file):
        yield "redis_tls_cert_file", "and redis_tls_key_file must be set together"
    uses_redis_tls_files = (
        config.redis_tls_ca_file or config.redis_tls_cert_file or config.redis_tls_key_file
    )
    if uses_redis_tls_files and not config.redis_tls:
        yield "redis_tls", "must be true when Redis TLS files are set"


_PEM_FILES = (
    "tls_cert_file",
    "tls_key_file",
    "tls_client_ca_file",
    "redis_tls_ca_file",
    "redis_tls_cert_file",
    "redis_tls_key_file",
)


def _check_files(config: ServerConfig) -> Problems:
    for name in _PEM_FILES:
        path = getattr(config, name)
        if path and not Path(path).is_file():
            yield name, "is not a readable file"


_CHECKS: tuple[Callable[[ServerConfig], Problems], ...] = (
    _check_redis,
    _check_serving,
    _check_symbols,
    _check_cache_and_watch,
    _check_fallback,
    _check_logs_and_metrics,
    _check_tls,
    _check_files,
)
"""Every check, each of one concern; the files last (they touch the disk)."""


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
    known = {f.metadata["env"] for f in settings_fields(ServerConfig)} | OTHER_PROJECT_VARIABLES
    return find_unknown_variables(environ, known, _CHECKED_PREFIXES)
