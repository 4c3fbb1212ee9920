"""Build the release's two wheels from a clean copy of the working tree.

What enters: the repository's files (tracked, and untracked unless ignored: a stale ``build/``,
``data/`` or egg-info never reaches a wheel) and an output folder. What leaves, in that folder:
``usdcop_observation_server-<V>-py3-none-any.whl`` (the root ``pyproject.toml``) and
``usdcop_observation_client-<V>-py3-none-any.whl`` (``packaging/client/pyproject.toml``).

    python packaging/build_wheels.py dist        # make wheels

The running interpreter's setuptools builds them when it is recent enough (>= 77, the
``license`` expression), else pip fetches one into an isolated build environment.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECTS = {"server": ".", "client": "packaging/client"}
"""Each wheel and the folder of its pyproject.toml, relative to the repository."""


def source_files(repo: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored paths that exist, relative to ``repo``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name and (repo / name).exists()})


def _isolation_flag() -> list[str]:
    try:
        major = int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return []
    return ["--no-build-isolation"] if major >= 77 else []


def build_wheels(out_dir: Path, repo: Path = REPO_ROOT) -> dict[str, Path]:
    """Both wheels into ``out_dir``: ``{"server": path, "client": path}``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    built: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="usdcop-wheels-") as tmp:
        copy = Path(tmp) / "src"
        for name in source_files(repo):
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, target)  # a symlink (packaging/client/LICENSE) as its file
        for wheel, project in PROJECTS.items():
            subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                 *_isolation_flag(), "--wheel-dir", str(out_dir), str(copy / project)],
                check=True,
            )  # fmt: skip
            made = out_dir.glob(f"usdcop_observation_{wheel}-*.whl")
            built[wheel] = max(made, key=lambda path: path.stat().st_mtime)
    return built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, nargs="?", default=REPO_ROOT / "dist")
    args = parser.parse_args()
    for path in build_wheels(args.out_dir).values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
