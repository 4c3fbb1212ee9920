"""``clients/go/src/usdcop/go.mod`` stays in step with the Go code: every module the packages
import is required, and nothing else is.

What enters: the go.mod and the import blocks of every ``.go`` file under the module (the
generated code included). The build itself stays offline in GOPATH mode over Debian's packaged
modules (``make test-go``, which also lists the packages in module mode from this go.mod).
"""

from __future__ import annotations

import re
from pathlib import Path

MODULE = Path(__file__).resolve().parents[1] / "go" / "src" / "usdcop"
IMPORT_BLOCK = re.compile(r"^import \((.*?)^\)", re.MULTILINE | re.DOTALL)
IMPORT_ONE = re.compile(r'^import (?:\w+ )?"([^"]+)"', re.MULTILINE)
QUOTED = re.compile(r'"([^"]+)"')
REQUIRE = re.compile(r"^\s*(?:require\s+)?([\w.\-/]+\.[\w.\-/]+) (v\S+)", re.MULTILINE)


def _imports(source: str) -> set[str]:
    found = set(IMPORT_ONE.findall(source))
    for block in IMPORT_BLOCK.findall(source):
        found.update(QUOTED.findall(block))
    return found


def test_go_mod_requires_exactly_the_imported_modules() -> None:
    go_mod = (MODULE / "go.mod").read_text()
    assert re.search(r"^module usdcop$", go_mod, re.MULTILINE)
    required = {path: version for path, version in REQUIRE.findall(go_mod)}
    imported = {
        path
        for source in MODULE.rglob("*.go")
        for path in _imports(source.read_text())
        if "." in path.split("/")[0]  # not the standard library, not this module
    }
    assert imported, "no third-party import found: the parser is broken"
    used = {next((m for m in required if p == m or p.startswith(m + "/")), p) for p in imported}
    assert used == set(required), (
        f"imported but not required, or required but unused: {used ^ set(required)}"
    )
