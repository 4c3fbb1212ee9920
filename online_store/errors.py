"""What the online store raises: the store failed, did not answer in time, or is full.

What enters: nothing. What leaves: ``StoreError`` and its two kinds. They say nothing of gRPC:
the server's error boundary maps them to status codes (UNAVAILABLE, RESOURCE_EXHAUSTED).
"""

from __future__ import annotations


class StoreError(Exception):
    """The online store (Redis) returned an error or could not be reached."""


class StoreTimeoutError(StoreError):
    """The online store did not answer within the bound (or the caller's deadline)."""


class StoreFullError(StoreError):
    """Redis refused a write because it is out of memory (``maxmemory`` reached under the
    ``noeviction`` policy): retrying soon cannot help until an operator frees or adds memory."""
