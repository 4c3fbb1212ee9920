"""Where the PostgreSQL offline store listens, and how to connect to it.

What enters: host, port, database, user and password (``pipeline.settings`` and
``server.config`` read them from the seed's ``POSTGRES_*`` variables). What leaves: psycopg
connection arguments and the ``POSTGRES_*`` variables ``feature_store.postgres.yaml`` expands.
The password is kept out of ``repr`` so it never reaches a log line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


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

    def feast_env(self) -> dict[str, str]:
        """The ``POSTGRES_*`` variables ``feature_repo/feature_store.postgres.yaml`` expands."""
        return {
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_DB": self.database,
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_SSLMODE": self.sslmode,
        }

    def __str__(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"
