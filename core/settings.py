"""The parts every settings model of the project is built from.

What enters: nothing at import; raw strings from the environment or flags. What leaves:
:class:`SettingsError`, the one error root of every settings model (server, pipeline, Airflow,
the online and offline store addresses): an environment variable or flag with an invalid value,
named in the message; ``parse_bool`` and ``parse_int``, which raise it.
"""

from __future__ import annotations


class SettingsError(ValueError):
    """An environment variable or flag has an invalid value (the message names it)."""


def parse_int(name: str, raw: str) -> int:
    """``raw`` as an int; SettingsError naming ``name`` if it is not one."""
    try:
        return int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None


def parse_bool(name: str, raw: str) -> bool:
    """1/true/yes/on or 0/false/no/off (any case); "" is false. SettingsError otherwise."""
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not true or false")
