"""The configured event loop is the one the server's coroutine runs on."""

from __future__ import annotations

import asyncio

import pytest

from server.app import run_event_loop
from server.config import ServerConfig
from server.errors import ConfigError


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_is_the_default_and_asyncio_can_be_chosen() -> None:
    assert ServerConfig().event_loop == "uvloop"
    assert run_event_loop(_loop_module(), "uvloop").startswith("uvloop")
    asyncio_config = ServerConfig.from_env({"USDCOP_EVENT_LOOP": "asyncio"})
    assert run_event_loop(_loop_module(), asyncio_config.event_loop).startswith("asyncio")


def test_an_unknown_event_loop_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="USDCOP_EVENT_LOOP"):
        ServerConfig.from_env({"USDCOP_EVENT_LOOP": "trio"})
