"""podman for the deploy tests: commands with bounded time and precise failures, health waits
that run the checks themselves (podman schedules health checks with systemd timers, which
machines without systemd lack), free host ports, and what a run left behind.

What enters: argv lists, container names, a run id (every name a test creates contains it).
What leaves: completed processes, or an AssertionError that says which command failed, its
exit code and the end of its output (and of the container's log for health waits).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
IMAGE = os.environ.get("DEPLOY_IMAGE", "localhost/usdcop-observation")
STANDIN = os.environ.get("STANDIN", "localhost/usdcop-standin")
STANDINS = {
    "REDIS_IMAGE": f"{STANDIN}-redis:debian12",
    "POSTGRES_IMAGE": f"{STANDIN}-postgres:debian12",
    "PROMETHEUS_IMAGE": f"{STANDIN}-prometheus:debian12",
    "NODE_EXPORTER_IMAGE": f"{STANDIN}-node-exporter:debian12",
}
"""The compose file's image variables -> the stand-ins `make deploy-standins` builds."""


def _tail(text: str | bytes | None, lines: int = 25) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run(
    argv: Sequence[str],
    *,
    timeout_s: float = 120,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end; with ``check``, a non-zero exit fails the test with its output."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout_s, env=env, cwd=cwd,
            check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"`{' '.join(argv)}` did not finish in {timeout_s:g} s\n"
            f"stdout:\n{_tail(exc.stdout)}\nstderr:\n{_tail(exc.stderr)}"
        ) from None
    if check and done.returncode != 0:
        raise AssertionError(
            f"`{' '.join(argv)}` exited with {done.returncode}\n"
            f"stdout:\n{_tail(done.stdout)}\nstderr:\n{_tail(done.stderr)}"
        )
    return done


def podman(
    *args: str, timeout_s: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return run(["podman", *args], timeout_s=timeout_s, check=check)


def compose_command() -> list[str]:
    """podman-compose from this interpreter's environment (the dev extra installs it)."""
    return [sys.executable, "-m", "podman_compose"]


def logs(container: str, lines: int = 30) -> str:
    done = podman("logs", "--tail", str(lines), container, check=False, timeout_s=30)
    return _tail(done.stdout + done.stderr, lines)


def wait_healthy(container: str, timeout_s: float) -> float:
    """Run the container's health check until it passes; returns the seconds it took."""
    began = time.monotonic()
    last = state = ""
    while True:
        done = podman("healthcheck", "run", container, check=False, timeout_s=60)
        if done.returncode == 0:
            return time.monotonic() - began
        last = (done.stdout + done.stderr).strip()
        state = podman("inspect", "-f", "{{.State.Status}}", container, check=False).stdout.strip()
        policy = podman(
            "inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", container, check=False
        ).stdout.strip()
        if state in ("exited", "stopped", "") and policy in ("", "no"):
            break  # it will not come back
        if time.monotonic() - began > timeout_s:
            break
        time.sleep(1)
    raise AssertionError(
        f"{container} not healthy after {time.monotonic() - began:.0f} s "
        f"(last check: {last or 'no output'}; state {state})\nits log:\n{logs(container)}"
    )


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (bound together, so distinct)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass(frozen=True)
class Leftovers:
    """Containers, pods, volumes and networks whose names contain the run id."""

    containers: tuple[str, ...]
    pods: tuple[str, ...]
    volumes: tuple[str, ...]
    networks: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.containers or self.pods or self.volumes or self.networks)


def _names(*args: str) -> list[str]:
    return podman(*args, timeout_s=60).stdout.split()


def volumes() -> set[str]:
    return set(_names("volume", "ls", "--format", "{{.Name}}"))


def leftovers(run_id: str, volumes_before: set[str] | None = None) -> Leftovers:
    """What of this run is still there; with ``volumes_before``, anonymous volumes created
    since count too."""
    new_volumes = {v for v in volumes() if run_id in v}
    if volumes_before is not None:
        new_volumes |= volumes() - volumes_before
    return Leftovers(
        containers=tuple(n for n in _names("ps", "-a", "--format", "{{.Names}}") if run_id in n),
        pods=tuple(n for n in _names("pod", "ps", "--format", "{{.Name}}") if run_id in n),
        volumes=tuple(sorted(new_volumes)),
        networks=tuple(n for n in _names("network", "ls", "--format", "{{.Name}}") if run_id in n),
    )


def teardown(run_id: str) -> None:
    """deploy/teardown.sh: remove everything named after the run (idempotent)."""
    run(["bash", str(DEPLOY / "teardown.sh"), run_id], timeout_s=180, check=False)


def require_tools() -> None:
    """Fail at once, saying what is missing, rather than in the middle of a test."""
    missing = [tool for tool in ("podman", "runc") if shutil.which(tool) is None]
    if missing:
        raise AssertionError(f"not installed: {', '.join(missing)} (apt-get install podman runc)")
    done = run([*compose_command(), "--version"], check=False, timeout_s=60)
    if done.returncode != 0:
        raise AssertionError(
            "podman-compose is not installed in this environment (pip install podman-compose)"
        )
    images = [f"{IMAGE}:server", f"{IMAGE}:pipeline", *STANDINS.values()]
    absent = [i for i in images if podman("image", "exists", i, check=False).returncode != 0]
    if absent:
        raise AssertionError(
            f"images not built: {', '.join(absent)} (make deploy-images deploy-standins)"
        )
