"""Pipeline settings: a frozen dataclass; the only module of the pipeline that reads the env.

What enters: an environment mapping (``PipelineSettings.from_env(os.environ)``) and, in
``python -m pipeline``, flags layered on top. Each field carries its doc, flag, commands and
environment variable in its metadata, and ``python -m pipeline --help`` is built from it (as the
server's is from ``server.config``). What leaves: ``PipelineSettings`` and the
``RedisAddress`` of the online store, which also renders the ``FEAST_REDIS_*`` variables that
``feature_repo/feature_store.yaml`` expands (Feast runs ``os.path.expandvars`` over the yaml,
so every variable must be set, even to an empty string); the offline store type
(``FEAST_OFFLINE_STORE_TYPE``: ``file`` or ``postgres``) and, for ``postgres``, the database
from the seed's ``POSTGRES_HOST/PORT/DB/USER/PASSWORD`` (``offline_store.connection``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.settings import (
    DATA_DIR_VARIABLE,
    FEATURE_REPO_VARIABLE,
    METRICS_PORT_VARIABLE,
    SERVER_PORT_VARIABLE,
    SYMBOLS_VARIABLE,
    Parser,
    SettingsError,
    about,
    env_values,
    parse_resolved_path,
    read_variable,
    replaced,
    settings_fields,
    shared,
)
from offline_store.connection import PostgresAddress
from offline_store.store import OFFLINE_STORE_VARIABLE
from online_store.address import RedisAddress

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout this package lives in (feature_repo/ and data/ sit beside pipeline/)."""

DEFAULT_REPO_DIR = REPO_ROOT / "feature_repo"
DEFAULT_DATA_DIR = REPO_ROOT / "data"
"""``feature_repo/feature_store.yaml`` points at ``../data``: the two must stay siblings."""


OfflineStoreType = Literal["file", "postgres"]
OFFLINE_STORE_TYPES: tuple[OfflineStoreType, ...] = ("file", "postgres")


def offline_store_type_from_env(environ: Mapping[str, str]) -> OfflineStoreType:
    """``FEAST_OFFLINE_STORE_TYPE``: ``file`` (unset or empty) or ``postgres``.

    Also read by ``feature_repo/features.py`` (which runs inside Feast's CLI as well), so the
    parsing lives here, once.
    """
    if read_variable(OFFLINE_STORE_VARIABLE, environ, "file") == "postgres":
        return "postgres"
    return "file"


COMMANDS_RUN_UP = ("run", "up", "live")
SCHEDULED_COMMANDS = ("l0", "l1", "materialize", "apply", "check-contract")
"""The scheduler's steps (pipeline.interval_cli)."""
OPS_COMMANDS = ("doctor", "redis-key", "skew")
"""The on-call commands (pipeline.ops_cli)."""
COMMANDS_DATA = ("run", "up", "live", "training-set")
"""Commands that build L0/L1 (history, seed, symbols)."""
ALL_COMMANDS = ("run", "up", "live", "training-set", "feast", *SCHEDULED_COMMANDS, *OPS_COMMANDS)


def _about(
    doc: str,
    *,
    flag: str,
    commands: tuple[str, ...],
    env: str | None = None,
    parse: Parser | None = None,
) -> dict[str, Any]:
    """Field metadata (``core.settings.about``): one-line doc, its ``python -m pipeline`` flag,
    the commands that take the flag, its environment variable (None: flag only) and a parser
    other than its type's. ``--help`` is built from these."""
    return about(env, doc, flag=flag, parse=parse, commands=commands)


@dataclass(frozen=True)
class PipelineSettings:
    """What the pipeline and the quick start need; built once at the entry point. Every
    default is defined here, once."""

    redis: RedisAddress | None = None
    """Online store (FEAST_REDIS_*); None starts an embedded redis-server (host unset)."""
    offline_store: OfflineStoreType = "file"
    """Offline store of L0/L1 and Feast: parquet files or PostgreSQL; FEAST_OFFLINE_STORE_TYPE."""
    postgres: PostgresAddress | None = None
    """The PostgreSQL offline store (POSTGRES_*); None with ``postgres`` starts an embedded one."""
    data_dir: Path = field(
        default=DEFAULT_DATA_DIR,
        metadata=shared(  # absolute: a step may change directory
            DATA_DIR_VARIABLE,
            doc="data folder (raw/, offline/, registry.db); must be ../data of the repository",
            parse=parse_resolved_path,
            flag="--data-dir",
            commands=ALL_COMMANDS,
        ),
    )
    repo_dir: Path = field(
        default=DEFAULT_REPO_DIR,
        metadata=shared(  # absolute: a step may change directory
            FEATURE_REPO_VARIABLE,
            doc="Feast repository folder (feature_store.yaml, features.py); moves --data-dir "
            "to its ../data",
            flag="--repo-dir",
            commands=ALL_COMMANDS,
        ),
    )
    symbols: tuple[str, ...] = field(
        default=("USDCOP",),
        metadata=shared(
            SYMBOLS_VARIABLE,
            doc="comma-separated symbols to generate, materialize and serve",
            flag="--symbols",
            commands=(*COMMANDS_DATA, "doctor"),
        ),
    )
    history_days: int = field(
        default=365,
        metadata=_about(
            "calendar days of generated history",
            flag="--days",
            commands=COMMANDS_DATA,
            env="USDCOP_HISTORY_DAYS",
        ),
    )
    seed: int = field(
        default=7,
        metadata=_about(
            "seed of the market-data generator (history and live bars)",
            flag="--seed",
            commands=COMMANDS_DATA,
            env="USDCOP_SEED",
        ),
    )
    server_port: int = field(
        default=50051,
        metadata=shared(
            SERVER_PORT_VARIABLE,
            doc="gRPC port of the server `up` starts; 0 picks a free one",
            flag="--port",
            commands=("up",),
        ),
    )
    live_tick_s: float = field(
        default=5.0,
        metadata=_about(
            "seconds between live-feed ticks",
            flag="--tick-s",
            commands=("up", "live"),
            env="USDCOP_LIVE_TICK_S",
        ),
    )
    live_catchup_bars: int = field(
        default=12,
        metadata=_about(
            "most 5-minute bars the live feed appends at once to catch up to now (12 = 1 h, "
            "every view's TTL)",
            flag="--catchup-bars",
            commands=("up", "live"),
            env="USDCOP_LIVE_CATCHUP_BARS",
        ),
    )
    metrics_port: int = field(
        default=9464,
        metadata=shared(
            METRICS_PORT_VARIABLE,
            doc="Prometheus /metrics port of the server `up` starts; 0 picks a free one",
            flag="--metrics-port",
            commands=("up",),
        ),
    )
    metrics_textfile_dir: Path | None = field(
        default=None,
        metadata=_about(
            "folder of the pipeline's metrics textfile (for the node exporter); "
            "default: data/metrics",
            flag="--metrics-textfile-dir",
            parse=parse_resolved_path,  # absolute: a step may change directory
            commands=COMMANDS_RUN_UP,
            env="USDCOP_METRICS_TEXTFILE_DIR",
        ),
    )

    agent_policy: Path | None = field(
        default=None,
        metadata=_about(
            "run the inference agent (python -m agent) against the server `up` starts, with "
            "this policy file, deciding on each new bar; empty: no agent (`make run` gives "
            "agent/policies/example.npz)",
            flag="--agent-policy",
            parse=parse_resolved_path,  # absolute: a step may change directory
            commands=("up",),
            env="USDCOP_AGENT_POLICY",
        ),
    )

    def __post_init__(self) -> None:
        if self.agent_policy is not None and not Path(self.agent_policy).is_file():
            raise SettingsError(f"USDCOP_AGENT_POLICY: no policy file {self.agent_policy}")
        if self.history_days < 2:
            raise SettingsError(f"USDCOP_HISTORY_DAYS must be >= 2: got {self.history_days}")
        if not self.symbols:
            raise SettingsError("USDCOP_SYMBOLS must name at least one symbol")
        if not 0 <= self.server_port < 65536:
            raise SettingsError(f"USDCOP_PORT must be 0-65535: got {self.server_port}")
        if not 0 <= self.metrics_port < 65536:
            raise SettingsError(f"USDCOP_METRICS_PORT must be 0-65535: got {self.metrics_port}")
        if not self.live_tick_s > 0:
            raise SettingsError(f"USDCOP_LIVE_TICK_S must be > 0: got {self.live_tick_s}")
        if self.offline_store not in OFFLINE_STORE_TYPES:
            raise SettingsError(
                f"FEAST_OFFLINE_STORE_TYPE must be one of {OFFLINE_STORE_TYPES}: "
                f"got {self.offline_store!r}"
            )
        if self.live_catchup_bars < 1:
            raise SettingsError(
                f"USDCOP_LIVE_CATCHUP_BARS must be >= 1: got {self.live_catchup_bars}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PipelineSettings:
        """Defaults overridden by whichever variables are set (empty counts as unset)."""
        values: dict[str, Any] = {
            "redis": RedisAddress.from_env(environ),
            "offline_store": offline_store_type_from_env(environ),
            "postgres": PostgresAddress.from_env(environ),
            **env_values(cls, environ),
        }
        if "repo_dir" in values and "data_dir" not in values:
            values["data_dir"] = values["repo_dir"].parent / "data"  # feature_store.yaml's ../data
        return cls(**values)

    @property
    def metrics_folder(self) -> Path:
        """Where the pipeline writes its metrics textfile."""
        return self.metrics_textfile_dir or self.data_dir / "metrics"

    def with_overrides(self, **values: Any) -> PipelineSettings:
        """A copy with some fields replaced (validated again); None values are ignored."""
        return replaced(self, values)


def setting_fields() -> tuple[dataclasses.Field[Any], ...]:
    """The fields set by an environment variable and/or a flag (all but the store addresses)."""
    return settings_fields(PipelineSettings)


SECRET_VARIABLES = tuple(
    name
    for variables in (RedisAddress("h", 1).feast_env(), PostgresAddress("h").feast_env())
    for name in variables
    if name.endswith("_PASSWORD")
)
"""The store addresses' secrets (FEAST_REDIS_PASSWORD, POSTGRES_PASSWORD), named by the addresses
themselves: read from the environment only (no flag; ``--help`` says so)."""
