"""Start-up warnings for operator mistakes that would otherwise pass silently.

What enters: the ``ServerConfig``, the started Redis client and the read plans. What leaves:
one WARNING line per mistake found (``event=operator_warning``, ``check=...``), logged once at
start-up; the server starts anyway (each is a legitimate state for a while, e.g. Redis not yet
materialized), and ``python -m pipeline doctor`` shows the same conditions from outside.

- ``data_dir``: the data folder does not exist, so the compute fallback has nothing to compute
  from (with ``fallback_source=file``);
- ``entity``: a served symbol has no entry in Redis under the configured Feast project (a wrong
  ``USDCOP_FEAST_PROJECT``, or nothing materialized yet): every view comes from the fallback;
- ``push_open``: the server listens on a non-loopback address while PushState is open to every
  caller (no token, no allowed client identities). A warning rather than a refusal: containers
  bind 0.0.0.0 behind their own network boundary, and refusing would break them; the line names
  the two settings that close it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from online_store.read_plan import ReadPlan
from server.config import ServerConfig

logger = logging.getLogger(__name__)

_CHECK_TIMEOUT_S = 1.0


def is_loopback(bind_address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; wildcards and other addresses are not."""
    host = bind_address.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def config_warnings(config: ServerConfig) -> list[tuple[str, str]]:
    """(check, message) for the mistakes visible in the configuration alone."""
    found: list[tuple[str, str]] = []
    if config.fallback_source == "file" and not Path(config.data_dir).is_dir():
        found.append(
            (
                "data_dir",
                f"data folder {config.data_dir} does not exist (USDCOP_DATA_DIR): the compute "
                "fallback has no data, so a view Redis cannot answer gets UNAVAILABLE",
            )
        )
    if (
        not is_loopback(config.bind_address)
        and not config.push_token
        and not config.push_allowed_clients
    ):
        found.append(
            (
                "push_open",
                f"PushState is open to every caller on {config.bind_address}: set "
                "USDCOP_PUSH_TOKEN or USDCOP_PUSH_ALLOWED_CLIENTS (with mTLS), or bind 127.0.0.1",
            )
        )
    return found


async def store_warnings(
    config: ServerConfig, redis_client: Any, plans: Mapping[str, ReadPlan]
) -> list[tuple[str, str]]:
    """(check, message) for served symbols with no entry in Redis under the configured
    project; none when Redis does not answer (the health check reports that) or on a cluster
    (keys live on several nodes; the doctor checks them)."""
    if config.redis_type == "redis_cluster":
        return []
    found: list[tuple[str, str]] = []
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            for symbol, plan in plans.items():
                if not await redis_client.exists(plan.key):
                    found.append(
                        (
                            "entity",
                            f"no entry for {symbol} in Redis under Feast project "
                            f"{config.project!r} (USDCOP_FEAST_PROJECT): every view comes from "
                            "the fallback until it is materialized there",
                        )
                    )
    except (TimeoutError, RedisError, OSError):
        return found
    return found


async def warn_operator(
    config: ServerConfig, redis_client: Any, plans: Mapping[str, ReadPlan]
) -> list[tuple[str, str]]:
    """Log every warning once (module docstring); returns them."""
    found = config_warnings(config) + await store_warnings(config, redis_client, plans)
    for check, message in found:
        logger.warning(message, extra={"event": "operator_warning", "check": check})
    return found
