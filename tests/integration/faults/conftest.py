"""The server tests' fixtures (raw data for the fallback, a closed port), shared here."""

from __future__ import annotations

from tests.integration.server.conftest import closed_port, data_dir, raw_frames

__all__ = ["closed_port", "data_dir", "raw_frames"]
