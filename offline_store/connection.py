"""Where the PostgreSQL offline store listens, and how to connect to it.

What enters: host, port, database, user and password, or the seed's ``POSTGRES_*`` variables
(``PostgresAddress.from_env``; ``POSTGRES_VARIABLES`` declares each once, and the server's
settings declare their fields with the same metadata). What leaves: psycopg
connection arguments and the ``POSTGRES_*`` variables ``feature_store.postgres.yaml`` expands.
The password is kept out of ``repr`` so it never reaches a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.settings import SettingsError, about, read_variable, secret

if TYPE_CHECKING:
    import psycopg

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

POSTGRES_VARIABLES: dict[str, dict[str, Any]] = {
    "host": about("POSTGRES_HOST", "PostgreSQL offline store host"),
    "port": about("POSTGRES_PORT", "PostgreSQL TCP port"),
    "database": about("POSTGRES_DB", "PostgreSQL database"),
    "user": about("POSTGRES_USER", "PostgreSQL role"),
    "password": secret("POSTGRES_PASSWORD", "PostgreSQL password; empty for none"),
}
"""Every ``POSTGRES_*`` variable the project reads, declared once."""


def _env(key: str) -> str:
    name: str = POSTGRES_VARIABLES[key]["env"]
    return name


@dataclass(frozen=True)
class PostgresAddress:
    """A PostgreSQL database to connect to."""

    host: str
    """Host name or IP address."""
    port: int = 5432
    """TCP port."""
    database: str = "usdcop"
    """Database name."""
    user: str = "postgres"
    """Role to connect as."""
    password: str = field(default="", repr=False)
    """Password; empty for none (never printed)."""

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("POSTGRES_HOST must not be empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"POSTGRES_PORT must be 1-65535: got {self.port}")
        if not self.database or not self.user:
            raise ValueError("POSTGRES_DB and POSTGRES_USER must not be empty")

    @property
    def sslmode(self) -> str:
        """``disable`` on loopback (the embedded server has no TLS), else ``prefer``."""
        return "disable" if self.host in LOOPBACK_HOSTS else "prefer"

    def connect_kwargs(self) -> dict[str, Any]:
        """Arguments for ``psycopg.connect``."""
        return {
            "host": self.host,
            "port": self.port,
            "dbname": self.database,
            "user": self.user,
            "password": self.password,
            "sslmode": self.sslmode,
        }

    def connect(self, **extra: Any) -> psycopg.Connection[Any]:
        """A new psycopg connection (use it as a context manager)."""
        import psycopg

        return psycopg.connect(**self.connect_kwargs(), **extra)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PostgresAddress | None:
        """The database from ``POSTGRES_*``; None when ``POSTGRES_HOST`` is unset or empty."""
        v = POSTGRES_VARIABLES
        host = read_variable(v["host"], environ, "")
        if not host:
            return None
        try:
            return cls(
                host=host,
                port=read_variable(v["port"], environ, 5432, "int"),
                database=read_variable(v["database"], environ, "usdcop"),
                user=read_variable(v["user"], environ, "postgres"),
                password=read_variable(v["password"], environ, ""),
            )
        except SettingsError:
            raise
        except ValueError as exc:
            raise SettingsError(str(exc)) from None

    def feast_env(self) -> dict[str, str]:
        """The ``POSTGRES_*`` variables ``feature_repo/feature_store.postgres.yaml`` expands."""
        return {
            _env("host"): self.host,
            _env("port"): str(self.port),
            _env("database"): self.database,
            _env("user"): self.user,
            _env("password"): self.password,
            "POSTGRES_SSLMODE": self.sslmode,
        }

    def __str__(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"
