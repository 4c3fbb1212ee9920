"""Start-up check of the online store: fatal misconfiguration versus a store that is merely down.

What enters: a ``ServerConfig``. What leaves: None when Redis answered PING or could not be
reached at all (down, restarting: not fatal, the fallback serves and health says so), or one
line naming a configuration the server cannot recover from by waiting: Redis refused the
credentials (WRONGPASS, NOAUTH, NOPERM), or TLS does not match (certificate not trusted,
handshake failed, or a TLS-only port spoken to in plaintext).
"""

from __future__ import annotations

import asyncio
import ssl

from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    ConnectionError,
    NoPermissionError,
    RedisError,
    ResponseError,
)

from online_store.address import RedisAddress

_AUTH_REPLIES = ("WRONGPASS", "NOAUTH", "NOPERM", "AUTH")


async def fatal_store_problem(address: RedisAddress, timeout_s: float) -> str | None:
    """One line saying why the configured Redis can never work, or None (fine, or just down)."""
    where = f"Redis at {address.host}:{address.port}"
    connection_class, kwargs = address.connection_options(timeout_s)
    connection = connection_class(**kwargs)
    try:
        async with asyncio.timeout(timeout_s):
            await connection.connect()  # type: ignore[no-untyped-call]
            await connection.send_command("PING")
            await connection.read_response()
    except (AuthenticationError, AuthenticationWrongNumberOfArgsError, NoPermissionError):
        return f"{where} refused the credentials: check FEAST_REDIS_PASSWORD (and the ACL user)"
    except ResponseError as exc:
        if str(exc).upper().startswith(_AUTH_REPLIES):
            return f"{where} refused the credentials: check FEAST_REDIS_PASSWORD (and the ACL user)"
        return None
    except ConnectionError as exc:
        problem = _tls_problem(where, address, exc)
    except (TimeoutError, RedisError, OSError):
        problem = None
    else:
        return None
    finally:
        await connection.disconnect(nowait=True)
    if problem is None and address.tls and await _speaks_plaintext(address, timeout_s):
        # A plaintext Redis reads a TLS ClientHello as an unfinished command and waits.
        problem = f"{where} speaks plaintext, not TLS: unset FEAST_REDIS_SSL or use its TLS port"
    return problem


async def _speaks_plaintext(address: RedisAddress, timeout_s: float) -> bool:
    """True when a plaintext PING gets a Redis reply (``+PONG``, or an error such as NOAUTH)."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(address.host, address.port)
            try:
                writer.write(b"PING\r\n")
                await writer.drain()
                reply = await reader.readline()
            finally:
                writer.close()
    except (TimeoutError, OSError):
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH", b"-ERR", b"-WRONGPASS"))


def _dropped(exc: BaseException) -> bool:
    """The peer accepted the TCP connection, then closed or reset it without a Redis reply."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionResetError | BrokenPipeError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "closed by server" in str(exc).lower()


def _tls_problem(where: str, address: RedisAddress, exc: BaseException) -> str | None:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"{where}: its TLS certificate is not trusted ({cause.verify_message}); "
                "check FEAST_REDIS_SSL_CA_CERTS"
            )
        if isinstance(cause, ssl.SSLError):
            return (
                f"{where}: the TLS handshake failed ({cause.reason or 'ssl error'}); is it a TLS "
                "port, and does it accept the client certificate (FEAST_REDIS_SSL_CERTFILE)?"
            )
        cause = cause.__cause__ or cause.__context__
    dropped = _dropped(exc)
    if dropped and not address.tls:
        return (
            f"{where} closed the connection before answering PING: is it a TLS-only port "
            "(set FEAST_REDIS_SSL=true)?"
        )
    if dropped:
        return (
            f"{where} dropped the TLS connection: does it require a client certificate "
            "(FEAST_REDIS_SSL_CERTFILE / FEAST_REDIS_SSL_KEYFILE) that it trusts?"
        )
    return None
