"""The request path never imports Feast (its import alone costs seconds), and what a start
imports before SERVING leaves out what only the fallback's computation, the metrics endpoint or
``--version`` need."""

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


def test_a_start_imports_neither_numpy_nor_the_metrics_endpoint_nor_the_client() -> None:
    # Measured (issue 17): numpy ~0.1 s, prometheus_client with its HTTP server and the client
    # package (for --version) another ~0.05 s of a start. The fallback's first refresh imports
    # numpy and the builder in its thread, after SERVING; metrics import theirs when on.
    code = (
        "import sys, server.app, server.__main__; "
        "print(*(any(m == p or m.startswith(p + '.') for m in sys.modules) for p in "
        "('numpy', 'pandas', 'pyarrow', 'prometheus_client', 'client', 'canonical.builder')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["False"] * 6
