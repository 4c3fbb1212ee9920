"""Pipeline settings: a frozen dataclass; the only module of the pipeline that reads the env.

What enters: an environment mapping (``PipelineSettings.from_env(os.environ)``) and, in
``python -m pipeline``, flags layered on top. What leaves: ``PipelineSettings`` and the
``RedisAddress`` of the online store, which also renders the ``FEAST_REDIS_*`` variables that
``feature_repo/feature_store.yaml`` expands (Feast runs ``os.path.expandvars`` over the yaml,
so every variable must be set, even to an empty string).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout this package lives in (feature_repo/ and data/ sit beside pipeline/)."""

DEFAULT_REPO_DIR = REPO_ROOT / "feature_repo"
DEFAULT_DATA_DIR = REPO_ROOT / "data"
"""``feature_repo/feature_store.yaml`` points at ``../data``: the two must stay siblings."""


class SettingsError(ValueError):
    """An environment variable or flag has an invalid value (the message names it)."""


@dataclass(frozen=True)
class RedisAddress:
    """Where the Feast online store (Redis) listens."""

    host: str
    """Host name or IP address."""
    port: int
    """TCP port."""
    password: str = ""
    """``AUTH`` password; empty for none. Must not contain ',' (Feast's connection string)."""
    tls: bool = False
    """Connect over TLS."""
    cluster: bool = False
    """A Redis Cluster (Feast's ``redis_type: redis_cluster``); host:port is a startup node."""

    def __post_init__(self) -> None:
        if not self.host:
            raise SettingsError("FEAST_REDIS_HOST must not be empty")
        if not 0 < self.port < 65536:
            raise SettingsError(f"FEAST_REDIS_PORT must be 1-65535: got {self.port}")
        if "," in self.password:
            raise SettingsError("FEAST_REDIS_PASSWORD must not contain ',' (Feast splits on it)")

    def feast_env(self) -> dict[str, str]:
        """The ``FEAST_REDIS_*`` variables ``feature_store.yaml`` expands."""
        return {
            "FEAST_REDIS_HOST": self.host,
            "FEAST_REDIS_PORT": str(self.port),
            "FEAST_REDIS_PASSWORD": self.password,
            "FEAST_REDIS_SSL": "true" if self.tls else "false",
            "FEAST_REDIS_TYPE": "redis_cluster" if self.cluster else "redis",
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
        return cls(
            host=host,
            port=_parse_int("FEAST_REDIS_PORT", environ.get("FEAST_REDIS_PORT", "6379")),
            password=environ.get("FEAST_REDIS_PASSWORD", ""),
            tls=_parse_bool("FEAST_REDIS_SSL", environ.get("FEAST_REDIS_SSL", "false")),
            cluster=_parse_redis_type(environ.get("FEAST_REDIS_TYPE", "redis")),
        )


@dataclass(frozen=True)
class PipelineSettings:
    """What the pipeline and the quick start need; built once at the entry point."""

    redis: RedisAddress | None = None
    """Online store; None starts an embedded redis-server (FEAST_REDIS_HOST unset)."""
    data_dir: Path = DEFAULT_DATA_DIR
    """Data folder (raw/, offline/, registry.db); USDCOP_DATA_DIR."""
    repo_dir: Path = DEFAULT_REPO_DIR
    """Feast repository folder (feature_store.yaml, features.py)."""
    symbols: tuple[str, ...] = ("USDCOP",)
    """Symbols to generate and materialize; USDCOP_SYMBOLS (comma-separated)."""
    history_days: int = 365
    """Calendar days of generated history; USDCOP_HISTORY_DAYS."""
    seed: int = 7
    """Seed of the market-data generator; USDCOP_SEED."""
    server_port: int = 50051
    """gRPC port of the server that ``up`` starts; USDCOP_PORT."""
    live_tick_s: float = 5.0
    """Seconds between live-mode ticks; USDCOP_LIVE_TICK_S."""
    live_catchup_bars: int = 12
    """Most bars the live mode appends at once to catch up to now; USDCOP_LIVE_CATCHUP_BARS."""

    def __post_init__(self) -> None:
        if self.history_days < 2:
            raise SettingsError(f"USDCOP_HISTORY_DAYS must be >= 2: got {self.history_days}")
        if not self.symbols:
            raise SettingsError("USDCOP_SYMBOLS must name at least one symbol")
        if not 0 <= self.server_port < 65536:
            raise SettingsError(f"USDCOP_PORT must be 0-65535: got {self.server_port}")
        if not self.live_tick_s > 0:
            raise SettingsError(f"USDCOP_LIVE_TICK_S must be > 0: got {self.live_tick_s}")
        if self.live_catchup_bars < 1:
            raise SettingsError(
                f"USDCOP_LIVE_CATCHUP_BARS must be >= 1: got {self.live_catchup_bars}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PipelineSettings:
        """Defaults overridden by whichever variables are set (empty counts as unset)."""

        def get(name: str) -> str | None:
            raw = environ.get(name, "").strip()
            return raw or None

        values: dict[str, Any] = {"redis": RedisAddress.from_env(environ)}
        if (raw := get("USDCOP_DATA_DIR")) is not None:
            values["data_dir"] = Path(raw).resolve()
        if (raw := get("USDCOP_SYMBOLS")) is not None:
            values["symbols"] = tuple(s.strip() for s in raw.split(",") if s.strip())
        for name, env in (
            ("history_days", "USDCOP_HISTORY_DAYS"),
            ("seed", "USDCOP_SEED"),
            ("server_port", "USDCOP_PORT"),
            ("live_catchup_bars", "USDCOP_LIVE_CATCHUP_BARS"),
        ):
            if (raw := get(env)) is not None:
                values[name] = _parse_int(env, raw)
        if (raw := get("USDCOP_LIVE_TICK_S")) is not None:
            values["live_tick_s"] = _parse_float("USDCOP_LIVE_TICK_S", raw)
        return cls(**values)

    def with_overrides(self, **values: Any) -> PipelineSettings:
        """A copy with some fields replaced (validated again); None values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in values.items() if v is not None})


def _parse_int(name: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None


def _parse_float(name: str, raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None


def _parse_redis_type(raw: str) -> bool:
    """``FEAST_REDIS_TYPE``: True for redis_cluster, False for redis (or empty)."""
    value = raw.strip() or "redis"
    if value not in ("redis", "redis_cluster"):
        raise SettingsError(f"FEAST_REDIS_TYPE must be redis or redis_cluster: got {raw!r}")
    return value == "redis_cluster"


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not true or false")
