"""Transport security and who may call PushState: the port's TLS credentials, a bearer token or
an allowed client-certificate identity.

``server_credentials(config)`` -> ``grpc.ServerCredentials`` for TLS (mTLS when a client CA is
set: client certificates are then required and verified by the handshake) or None for a
plaintext port; key files are read once at start-up and their contents never logged.

What enters: the call's context (its ``authorization`` metadata and, over mTLS, the peer's
certificate identities from gRPC's auth context) and the configured token / allowed identities.
What leaves: nothing when the caller is authorized; ``UnauthenticatedError`` when it brings no
valid credentials (no token, a wrong token, no client certificate), ``PermissionDeniedError``
when its client certificate is valid (the TLS handshake checked it against the client CA) but
its identity is not among the allowed ones.

With neither a token nor allowed identities configured, PushState is open (the default, for the
loopback quick start). Tokens are compared in constant time (``hmac.compare_digest``); neither
the configured token nor a presented one is ever logged or echoed.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from server.errors import PermissionDeniedError, UnauthenticatedError

if TYPE_CHECKING:
    from server.config import ServerConfig

_IDENTITY_KEYS = ("x509_common_name", "x509_subject_alternative_name", "x509_subject")
"""gRPC auth-context properties that name a TLS peer (the CN, each SAN, the full subject)."""
_BEARER = b"bearer "


_CallContext = grpc.aio.ServicerContext[Any, Any]


class PushAuthorizer:
    """Checks one call against the configured credentials (both optional).

    >>> PushAuthorizer(token="", allowed_clients=()).restricted
    False
    """

    def __init__(self, token: str, allowed_clients: tuple[str, ...]) -> None:
        self._token = token.encode()
        self._allowed = frozenset(name.encode() for name in allowed_clients)

    @property
    def restricted(self) -> bool:
        return bool(self._token or self._allowed)

    def check(self, context: _CallContext) -> None:
        """Return when the caller may push; raise the precise status otherwise."""
        if not self.restricted:
            return
        presented = self._presented_token(context)
        if self._token and presented is not None and hmac.compare_digest(presented, self._token):
            return
        if presented is not None:
            raise UnauthenticatedError("PushState: the bearer token is not valid")
        identities = self._peer_identities(context)
        if identities and self._allowed:
            if not identities.isdisjoint(self._allowed):
                return
            raise PermissionDeniedError(
                "PushState: this client certificate is not allowed to push state"
            )
        raise UnauthenticatedError(
            "PushState needs an authorized caller: "
            + " or ".join(
                what
                for what, needed in (
                    ("'authorization: Bearer <token>' metadata", bool(self._token)),
                    ("an allowed client certificate", bool(self._allowed)),
                )
                if needed
            )
        )

    @staticmethod
    def _presented_token(context: _CallContext) -> bytes | None:
        for key, value in context.invocation_metadata() or ():
            if key != "authorization":
                continue
            raw = value.encode() if isinstance(value, str) else bytes(value)
            if raw[: len(_BEARER)].lower() == _BEARER:
                return raw[len(_BEARER) :].strip()
            return b""  # another scheme: credentials, but not ours
        return None

    @staticmethod
    def _peer_identities(context: _CallContext) -> frozenset[bytes]:
        auth = context.auth_context()
        return frozenset(name for key in _IDENTITY_KEYS for name in auth.get(key, ()))


ALLOW_EVERY_CALLER = PushAuthorizer(token="", allowed_clients=())
"""PushState open to every caller (no token, no allowed identities configured)."""


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS credentials of the gRPC port, or None when it serves plaintext."""
    if not config.tls_cert_file:
        return None
    chain = Path(config.tls_cert_file).read_bytes()
    key = Path(config.tls_key_file).read_bytes()
    client_ca = Path(config.tls_client_ca_file).read_bytes() if config.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )
