"""``python -m server`` / ``usdcop-observation-server``: run the observation server.

Settings come from environment variables (see ``server.config``) and, on top, from flags;
``--help`` lists both. ``--workers N`` forks N processes *before* any gRPC or asyncio object
exists (gRPC does not survive a fork of a running core); each binds the same explicit port with
SO_REUSEPORT, and the parent forwards SIGTERM/SIGINT to them and waits. Before any bind, the
process claims its port (``server.port_guard``): a second instance on a port another one serves
exits 1 with one line, while a server's own workers still share it. No process outlives the
server: each worker gets SIGTERM when the parent dies (``core.lifetime``); the compute
fallback (``server.fallback``) is a thread of each worker, not a process.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence

from core.lifetime import die_with_parent
from core.settings import add_flags, secret_variables, settings_fields
from server.config import ServerConfig, flag_overrides, unknown_variables
from server.errors import ConfigError, StartupError
from server.logging_setup import configure_logging
from server.port_guard import PortGuard

logger = logging.getLogger("server")


class _VersionAction(argparse.Action):
    """``--version``, its line built only when asked: ``client._version`` imports the client
    package (grpc, protobuf, numpy), which a server start must not wait for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(
            option_strings,
            dest=dest,
            default=argparse.SUPPRESS,
            nargs=0,
            help="show program's version number and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from client._version import version_line

        print(version_line("usdcop-observation-server"))
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="Serve USD/COP observations (contract CTR-FEATURE-001) over gRPC. "
        "Every flag overrides its environment variable. Secrets are read from the environment "
        "only: " + ", ".join(secret_variables(ServerConfig)) + ".",
    )
    parser.add_argument("--version", action=_VersionAction)
    add_flags(parser, settings_fields(ServerConfig))  # secrets get none: `ps` shows argv
    return parser


def config_from(argv: Sequence[str], environ: dict[str, str]) -> ServerConfig:
    """Defaults <- environment <- flags; ConfigError on any invalid value."""
    args = build_parser().parse_args(argv)
    return ServerConfig.from_env(environ).with_overrides(**flag_overrides(args))


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _run_worker(config: ServerConfig) -> int:
    # imported after the fork: no gRPC state crosses it
    from server.app import run_event_loop, serve

    try:
        run_event_loop(serve(config), config.event_loop)
    except StartupError as exc:
        logger.error("cannot start: %s", exc.public_message)
        return 1
    return 0


def _run_single(config: ServerConfig) -> int:
    guard = PortGuard(config.bind_address, config.port) if config.port else None  # 0: a free one
    try:
        if guard is not None:
            guard.acquire()
    except StartupError as exc:
        logger.error("cannot start: %s", exc.public_message)
        return 1
    try:
        return _run_worker(config)
    finally:
        if guard is not None:
            guard.release()


def _run_workers(
    config: ServerConfig, on_started: Callable[[list[int]], None] | None = None
) -> int:
    if config.port == 0:
        config = config.with_overrides(port=_free_port(config.bind_address))
    guard = PortGuard(config.bind_address, config.port)
    try:
        guard.acquire()  # before the fork: the workers inherit the claim and share the port
    except StartupError as exc:
        logger.error("cannot start: %s", exc.public_message)
        return 1
    try:
        return _fork_workers(config, on_started)
    finally:
        guard.release()


def _fork_workers(config: ServerConfig, on_started: Callable[[list[int]], None] | None) -> int:
    children: list[int] = []
    for _ in range(config.workers):
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                die_with_parent(signal.SIGTERM, parent)
                code = _run_worker(config)
            except BaseException:
                logger.exception("worker failed")
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):  # already exited
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    logger.info("started %d workers on port %d: pids %s", len(children), config.port, children)
    if on_started is not None:
        try:
            on_started(children)
        except StartupError as exc:
            logger.error("cannot start: %s", exc.public_message)
            forward(signal.SIGTERM, None)
            for child in children:
                os.waitpid(child, 0)
            return 1
    exit_code = 0
    for child in children:
        _, status = os.waitpid(child, 0)
        exit_code = exit_code or os.waitstatus_to_exitcode(status)
    return exit_code


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = config_from(sys.argv[1:] if argv is None else argv, dict(os.environ))
    except ConfigError as exc:
        print(f"configuration error: {exc.public_message}", file=sys.stderr)
        return 2
    configure_logging(config.log_format)
    for name, closest in unknown_variables(os.environ):
        hint = f"; did you mean {closest}?" if closest else ""
        logging.getLogger("server").warning(
            "unknown variable %s is ignored%s",
            name,
            hint,
            extra={"event": "operator_warning", "check": "unknown_variable"},
        )
    if config.workers == 1:
        return _run_single(config)
    if not config.metrics_port:
        return _run_workers(config)
    from server.metrics_runtime import WorkerMetrics

    with WorkerMetrics(config) as metrics:
        return _run_workers(metrics.worker_config, on_started=metrics.serve)


if __name__ == "__main__":
    sys.exit(main())
