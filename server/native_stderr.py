"""Lines that native code writes to stderr, re-emitted as log records (``--log-format json``).

What enters: file descriptor 2, which gRPC's C core (and any other native library, or a child
process that inherits it) writes to directly, bypassing Python's logging: e.g. one line per
failed TLS handshake, ``E1205 12:09:49.773216   13833 ssl_transport_security.cc:2563] ...``.
What leaves: the same lines as records of the ``grpc`` logger (level from the line's first
letter; ``source`` = file:line, ``core_thread`` = the core's thread id), or of ``stderr`` at WARNING
for anything else, so that every line on the real stderr is one JSON object.

How: the real stderr is duplicated to a new descriptor that Python's logging keeps writing to,
fd 2 becomes the write end of a pipe, and a daemon thread reads the pipe line by line. Forked
workers inherit fd 2 (the pipe) and the parent's reader serves them all; the parent outlives
its workers. gRPC 1.85's core logs a failed handshake at INFO by default (any client can cause
one); ``GRPC_VERBOSITY=ERROR`` in the server's environment silences those (gRPC reads it when it
is imported, so it must be set by whoever starts the process).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from typing import TextIO

_CORE_LINE = re.compile(
    r"^(?P<level>[DIWEF])\d{4} \d\d:\d\d:\d\d\.\d+\s+(?P<thread>\d+) "
    r"(?P<source>[^\]\s]+)\] ?(?P<text>.*)$"
)
_LEVELS = {
    "D": logging.DEBUG,
    "I": logging.INFO,
    "W": logging.WARNING,
    "E": logging.ERROR,
    "F": logging.CRITICAL,
}
_core_logger = logging.getLogger("grpc")
_other_logger = logging.getLogger("stderr")


def emit_native_line(line: str) -> None:
    """One line from fd 2 as a log record (module docstring)."""
    text = line.rstrip("\r\n")
    if not text.strip():
        return
    match = _CORE_LINE.match(text)
    if match is None:
        _other_logger.warning(text, extra={"event": "native_stderr"})
        return
    _core_logger.log(
        _LEVELS[match["level"]],
        match["text"],
        extra={
            "event": "grpc_core",
            "source": match["source"],
            "core_thread": int(match["thread"]),
        },
    )


def capture_native_stderr() -> TextIO:
    """Point fd 2 at a pipe read by a daemon thread (``emit_native_line``); returns a text
    stream on the real stderr for the log handler."""
    real_fd = os.dup(2)
    real = os.fdopen(real_fd, "w", buffering=1, encoding="utf-8", errors="replace")
    read_fd, write_fd = os.pipe()
    sys.stderr.flush()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    os.set_inheritable(2, True)
    thread = threading.Thread(target=_pump, args=(read_fd,), name="native-stderr", daemon=True)
    thread.start()
    return real


def _pump(read_fd: int) -> None:
    with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as pipe:
        for line in pipe:
            try:
                emit_native_line(line)
            except Exception:
                continue
