"""The deploy tests (`make test-deploy`, not part of `make test`): the images, the compose stack
and `podman kube play`, for real, with podman.

Every name a test creates contains the run id (USDCOP_DEPLOY_RUN, set by `make test-deploy`;
else one made here), host ports are free ones, and podman reads the containers.conf of
deploy/containers-conf.sh (CONTAINERS_CONF), so runs never collide with each other or with a
stack someone started by hand. Teardown is unconditional: fixture finalizers, and the make
target's trap runs deploy/teardown.sh again.

Figures (build-independent: time to the first observation, RSS, what a Redis kill did) are
collected in ``figures`` and printed at the end of the session.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy import _podman

pytestmark = pytest.mark.deploy

_FIGURES: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("CONTAINERS_CONF"):
        folder = Path(tempfile.mkdtemp(prefix="usdcop-deploy-conf-"))
        conf = folder / "containers.conf"
        conf.write_text(
            subprocess.run(
                ["bash", str(_podman.DEPLOY / "containers-conf.sh")],
                capture_output=True, text=True, check=True,
            ).stdout
        )  # fmt: skip
        os.environ["CONTAINERS_CONF"] = str(conf)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FIGURES:
        terminalreporter.section("deploy figures")
        for name, value in _FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def figures() -> dict[str, str]:
    """Measured figures, printed in the session summary."""
    return _FIGURES


@pytest.fixture(scope="session")
def run_id() -> Iterator[str]:
    """Unique per run; the session's finalizer removes whatever carries it."""
    _podman.require_tools()
    rid = os.environ.get("USDCOP_DEPLOY_RUN") or f"usdcop-t{os.getpid()}"
    yield rid
    _podman.teardown(rid)
