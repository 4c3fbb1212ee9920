"""The server tests' raw market data fixture, shared with the ops tests."""

from __future__ import annotations

from tests.integration.server.conftest import raw_frames

__all__ = ["raw_frames"]
