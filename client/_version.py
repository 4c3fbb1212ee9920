"""The release of the whole project: both distributions (the client alone, and the server with
the pipeline) carry this one version, and every command prints it with ``--version``.

Releases are tagged ``vMAJOR.MINOR.PATCH`` (CHANGELOG.md); this string is the tag without the
``v``. The packaging reads it from here (``pyproject.toml``'s dynamic version).
"""

from __future__ import annotations

__version__ = "0.1.0"


def version_line(command: str) -> str:
    """What ``COMMAND --version`` prints: the command, the release and the feature contract.

    >>> version_line("usdcop-observation")  # doctest: +ELLIPSIS
    'usdcop-observation 0.1.0 (contract CTR-FEATURE-001 ...)'
    """
    from canonical.contract import CONTRACT_HASH, CONTRACT_ID

    return f"{command} {__version__} (contract {CONTRACT_ID} {CONTRACT_HASH[:12]})"
