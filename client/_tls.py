"""Transport security of the client's channel and PushState's credentials.

What enters: PEM bytes or files (the server's root CA; for mTLS the client certificate and
key) and an optional bearer token. What leaves: ``grpc.ChannelCredentials`` for a secure
channel, and the call metadata PushState sends (``authorization: Bearer <token>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc


@dataclass(frozen=True)
class ClientTls:
    """TLS settings of a client channel; ``None`` root means the system's trust store.

    >>> tls = ClientTls.from_files(root_certificates="ca.pem")  # doctest: +SKIP
    >>> ObservationClient("obs.internal:50051", tls=tls)       # doctest: +SKIP
    """

    root_certificates: bytes | None = None
    """PEM CA bundle that signed the server's certificate."""
    certificate_chain: bytes | None = field(default=None, repr=False)
    """PEM client certificate (mTLS), with ``private_key``."""
    private_key: bytes | None = field(default=None, repr=False)
    """PEM key of ``certificate_chain``; never shown in a repr."""

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("certificate_chain and private_key go together (mTLS)")

    @classmethod
    def from_files(
        cls,
        root_certificates: str | Path | None = None,
        certificate_chain: str | Path | None = None,
        private_key: str | Path | None = None,
    ) -> ClientTls:
        """Read the PEM files (each optional, the last two together)."""

        def read(path: str | Path | None) -> bytes | None:
            return None if path is None else Path(path).read_bytes()

        return cls(read(root_certificates), read(certificate_chain), read(private_key))

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )


def push_metadata(token: str | None) -> tuple[tuple[str, str], ...] | None:
    """PushState's call metadata: the bearer token when one is set."""
    return None if not token else (("authorization", f"Bearer {token}"),)
