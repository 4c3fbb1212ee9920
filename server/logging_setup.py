"""The server's log output: human-readable text, or one JSON object per line.

What enters: ``ServerConfig.log_format`` (``text`` or ``json``) and log records; call sites add
structured fields with ``extra=`` (``event``, ``symbol``, ``view``, ``reason``, ``peer``,
``request_id``, ``grpc_code``, ``from_state``, ``to_state`` ...). What leaves: lines on stderr.

JSON lines (``--log-format json``) are serialized with orjson: ``ts`` (RFC 3339, UTC, ms),
``level``, ``logger``, ``pid``, ``message``, every ``extra`` field, and ``exc_type`` +
``exc`` (the formatted traceback) for an exception. Secrets never reach a record in the first
place: the config's Redis password is ``repr=False`` and no call site formats a connection
string; the tests run a server with a password and search every line for it. In JSON mode the
lines native code writes straight to fd 2 (gRPC's C core) are re-emitted as JSON records too
(``server.native_stderr``).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from server.native_stderr import capture_native_stderr

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
