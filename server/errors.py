"""The server's one exception tree; each error knows the gRPC status it maps to.

::

    ServerError                     INTERNAL           base; unexpected failures map here too
    ├── ConfigError                 (start-up only)    an invalid setting; never reaches a client
    │                                                  (also a core.settings.SettingsError)
    ├── StartupError                (start-up only)    e.g. the port cannot be bound
    ├── RequestError                                   the caller's request is wrong
    │   ├── InvalidArgumentError    INVALID_ARGUMENT   malformed bytes, bad symbol or position,
    │   │                                              missing event_time
    │   ├── SymbolNotFoundError     NOT_FOUND          a valid symbol this server does not serve
    │   ├── UnauthenticatedError    UNAUTHENTICATED    PushState without valid credentials
    │   └── PermissionDeniedError   PERMISSION_DENIED  PushState by an authenticated caller
    │                                                  that is not allowed to push
    ├── OnlineStoreUnavailableError UNAVAILABLE        a push could not be written (the
    │                                                  store's own errors: online_store.errors)
    ├── NoDataAvailableError        UNAVAILABLE        neither store nor fallback can answer
    ├── ShuttingDownError           UNAVAILABLE        the drain period is over; retry elsewhere
    ├── ResourceExhaustedError      RESOURCE_EXHAUSTED a per-process bound is reached (retryable)
    │   └── OnlineStoreFullError    RESOURCE_EXHAUSTED Redis is at maxmemory and refuses writes
    └── DeadlineExceededError       DEADLINE_EXCEEDED  the caller's deadline passed first

Every message is written for the client: it names the problem and never carries internals
(exception text of a library, hosts, stack traces). ``service.py`` is the one boundary that
turns these into status codes; anything else becomes INTERNAL with a generic message and is
logged server-side.
"""

from __future__ import annotations

import grpc

from core.settings import SettingsError


class ServerError(Exception):
    """Base of every server error; ``public_message`` is safe to send to a client."""

    status_code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, public_message: str = "internal server error") -> None:
        super().__init__(public_message)
        self.public_message = public_message


class ConfigError(ServerError, SettingsError):
    """A configuration value is invalid; raised at start-up, before anything is served. Also a
    ``SettingsError``: every settings model's errors share that one root."""


class StartupError(ServerError):
    """The server cannot start (e.g. its address cannot be bound); raised before serving."""


class RequestError(ServerError):
    """The request itself is wrong; retrying it unchanged cannot succeed."""


class InvalidArgumentError(RequestError):
    """Malformed request bytes or a field outside its documented domain."""

    status_code = grpc.StatusCode.INVALID_ARGUMENT


class SymbolNotFoundError(RequestError):
    """A well-formed symbol that this server is not configured to serve."""

    status_code = grpc.StatusCode.NOT_FOUND

    def __init__(self, symbol: str) -> None:
        super().__init__(f"unknown symbol {symbol!r}: this server does not serve it")


class UnauthenticatedError(RequestError):
    """The call needs credentials (a bearer token or a client certificate) and has no valid ones."""

    status_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(RequestError):
    """The caller is authenticated (its client certificate) but not allowed to make this call."""

    status_code = grpc.StatusCode.PERMISSION_DENIED


class OnlineStoreUnavailableError(ServerError):
    """The online store failed a call that has no fallback (PushState's write)."""

    status_code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, public_message: str = "the online store is unavailable") -> None:
        super().__init__(public_message)


class NoDataAvailableError(ServerError):
    """Neither the online store nor the compute fallback holds data for a needed view."""

    status_code = grpc.StatusCode.UNAVAILABLE


class ShuttingDownError(ServerError):
    """The server's drain period is over and it is about to close its port (retryable)."""

    status_code = grpc.StatusCode.UNAVAILABLE

    def __init__(
        self, public_message: str = "the server is shutting down; retry on another instance"
    ) -> None:
        super().__init__(public_message)


class ResourceExhaustedError(ServerError):
    """A per-process bound (e.g. WatchObservations streams) is reached; retry later."""

    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class OnlineStoreFullError(ResourceExhaustedError):
    """Redis refused a write because it is out of memory (``maxmemory`` reached under the
    ``noeviction`` policy): retrying soon cannot help until an operator frees or adds memory."""

    def __init__(
        self,
        public_message: str = (
            "the online store is out of memory (Redis maxmemory reached, policy noeviction); "
            "nothing was written"
        ),
    ) -> None:
        super().__init__(public_message)


class DeadlineExceededError(ServerError):
    """The caller's deadline passed before an answer could be made."""

    status_code = grpc.StatusCode.DEADLINE_EXCEEDED

    def __init__(
        self, public_message: str = "the deadline passed before an answer was ready"
    ) -> None:
        super().__init__(public_message)
