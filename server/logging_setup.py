"""The server's log output: human-readable text, or one JSON object per line.

What enters: ``ServerConfig.log_format`` (``text`` or ``json``) and log records; call sites add
structured fields with ``extra=`` (``event``, ``symbol``, ``view``, ``reason``, ``peer``,
``request_id``, ``grpc_code``, ``from_state``, ``to_state`` ...). What leaves: lines on stderr.

JSON lines (``--log-format json``) are serialized with orjson: ``ts`` (RFC 3339, UTC, ms),
``level``, ``logger``, ``pid``, ``message``, every ``extra`` field, and ``exc_type`` +
``exc`` (the formatted traceback) for an exception. Secrets never reach a record in the first
place: the config's Redis password is ``repr=False`` and no call site formats a connection
string; the tests run a server with a password and search every line for it. In JSON mode the
lines native code writes straight to fd 2 (gRPC's C core) are re-emitted as JSON records too:

Native stderr. What enters: file descriptor 2, which gRPC's C core (and any other native
library, or a child process that inherits it) writes to directly, bypassing Python's logging:
e.g. one line per failed TLS handshake, ``E1205 12:09:49.773216   13833
ssl_transport_security.cc:2563] ...``. What leaves: the same lines as records of the ``grpc``
logger (level from the line's first letter; ``source`` = file:line, ``core_thread`` = the
core's thread id), or of ``stderr`` at WARNING for anything else, so that every line on the
real stderr is one JSON object. How: the real stderr is duplicated to a new descriptor that
Python's logging keeps writing to, fd 2 becomes the write end of a pipe, and a daemon thread
reads the pipe line by line. Forked workers inherit fd 2 (the pipe) and the parent's reader
serves them all; the parent outlives its workers. gRPC 1.85's core logs a failed handshake at
INFO by default (any client can cause one); ``GRPC_VERBOSITY=ERROR`` in the server's
environment silences those (gRPC reads it when it is imported, so it must be set by whoever
starts the process).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

TEXT_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record (module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Send the root logger's records to stderr in ``log_format`` (replaces its handlers)."""
    stream = capture_native_stderr() if log_format == "json" else sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


# --- native stderr (module docstring) ------------------------------------------------------

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
