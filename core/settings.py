"""The parts every settings model of the project is built from.

What enters: nothing at import. What leaves: :class:`SettingsError`, the one error root of every
settings model (server, pipeline, Airflow, the online and offline store addresses): an
environment variable or flag with an invalid value, named in the message.
"""

from __future__ import annotations


class SettingsError(ValueError):
    """An environment variable or flag has an invalid value (the message names it)."""
