"""One server per port: refuse to start where another live instance already serves.

What enters: the bind address and the explicit port, before any worker binds it. What leaves: a
held :class:`PortGuard` (kept open for the life of the server and inherited by its forked
workers), or a :class:`~server.errors.StartupError` naming the port and who holds it.

Why. ``--workers N`` binds the port with SO_REUSEPORT so that the workers share it; the kernel
then lets *any* later process of the same user bind it too, and spreads new connections over
both: a second instance with other settings would silently serve half the agents. Two checks,
before the first bind:

1. A claim in the abstract Unix socket namespace, ``\\0usdcop-observation-server:port:<P>``.
   Binding a name there is exclusive for every process and every user of the network namespace,
   needs no file or permission, and the kernel drops the name when the last process holding the
   socket dies (SIGKILL included): no stale lock to clean up. It is race-free between two
   instances starting at the same moment. Forked workers inherit the open socket, so a
   server's own workers never compete for it. It is keyed by port alone: 0.0.0.0:P and
   127.0.0.1:P overlap, so two instances on one port are refused whatever their addresses.
2. A TCP connect to the port (on loopback when the bind address is a wildcard): anything else
   already accepting there (another program, an instance in an older version) refuses the
   start too. Between processes of different users the kernel already refuses SO_REUSEPORT.

A lock file was the other candidate: it needs a folder writable by every user that may run a
server, survives a SIGKILL as a file (flock releases, the file stays), and says nothing about
other programs on the port. Reading socket owners in ``/proc`` fails across users.
"""

from __future__ import annotations

import contextlib
import socket
from types import TracebackType

from server.errors import StartupError

_PROBE_TIMEOUT_S = 0.5
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1", "": "127.0.0.1"}


def claim_name(port: int) -> bytes:
    """The abstract-namespace name that one server on ``port`` holds."""
    return b"\0usdcop-observation-server:port:%d" % port


def _probe_host(bind_address: str) -> str:
    host = _WILDCARDS.get(bind_address, bind_address)
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def someone_accepts(bind_address: str, port: int) -> bool:
    """True when a TCP connect to ``port`` (on ``bind_address``, loopback for a wildcard)
    succeeds, i.e. some process already listens there."""
    host = _probe_host(bind_address)
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


class PortGuard:
    """The claim on one port; hold it (``with``) for as long as the server runs.

    >>> with PortGuard("127.0.0.1", 50051):   # StartupError if another instance serves it
    ...     run_the_server()
    """

    def __init__(self, bind_address: str, port: int) -> None:
        self._socket: socket.socket | None = None
        self.bind_address = bind_address
        self.port = port

    def acquire(self) -> PortGuard:
        where = f"{self.bind_address}:{self.port}"
        claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            claim.bind(claim_name(self.port))
        except OSError:
            claim.close()
            raise StartupError(
                f"port {self.port} is already served by another observation server instance "
                f"(refusing to share {where} with it)"
            ) from None
        if someone_accepts(self.bind_address, self.port):
            claim.close()
            raise StartupError(
                f"port {self.port} is already served by another process "
                f"(something accepts connections on {where})"
            )
        self._socket = claim
        return self

    def release(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None

    def __enter__(self) -> PortGuard:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
