"""The request path never imports Feast (its import alone costs seconds)."""

from __future__ import annotations

import subprocess
import sys


def test_server_app_does_not_import_feast() -> None:
    code = (
        "import sys, server.app, server.service, server.fallback, server.__main__; "
        "print('feast' in sys.modules, any(m.startswith('feast.') for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["False", "False"]
