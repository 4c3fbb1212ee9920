"""Process lifetime: a child process that dies with its parent, whatever signal ends the parent.

What enters: the signal the child wants and the pid of the parent it expects. What leaves: on
Linux, ``prctl(PR_SET_PDEATHSIG)`` set in the calling process, so the kernel signals it the
moment its parent goes (SIGKILL included, where no handler of the parent runs); elsewhere
nothing (the children then rely on the parent's clean shutdown).

The kernel fires the signal when the parent *thread* that created the child exits, not the
parent process: create children from a thread that lives as long as they should (the main
thread, or the event-loop thread that owns them). Callers:

- ``python -m server --workers N``: each forked worker (from the main thread);
- ``devstack``: the embedded redis-server and the server child (``preexec_fn``).

gRPC and ``preexec_fn``: a ``preexec_fn`` makes Python fork (no vfork/posix_spawn), and with
gRPC's fork support on (the C core's default) a gRPC channel busy in another thread at that
moment can kill the child before it execs (``epoll_wait error: Bad file descriptor``, exit -6;
21 and 38 children of 300 here with grpcio 1.85, none with ``GRPC_ENABLE_FORK_SUPPORT=false``).
gRPC reads the variable when it is imported, so ``devstack``, ``pipeline``, ``benchmarks`` and
the tests' conftest set it (unless set) before anything imports grpc; no process here uses a
gRPC object across a fork.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM, parent_pid: int | None = None) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux only).

    ``parent_pid``: the parent the caller was started by; if it already died before the prctl
    took effect (the process was re-parented), exit at once instead of running orphaned.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def preexec_die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``subprocess.Popen(preexec_fn=...)`` that ties the child to the calling thread's
    process (the parent pid is taken now, before the fork)."""
    parent = os.getpid()

    def tie() -> None:
        die_with_parent(sig, parent)

    return tie
