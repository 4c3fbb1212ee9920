"""The registry file each offline store type reads is the one its Feast yaml writes."""

from __future__ import annotations

from pathlib import Path

import yaml

from offline_store import files, postgres
from pipeline.registry_file import REGISTRY_FILES, registry_path
from pipeline.settings import DEFAULT_REPO_DIR


def test_registry_path_follows_each_yaml_s_registry_key() -> None:
    yamls = {"file": files.FEAST_YAML, "postgres": postgres.FEAST_YAML}
    assert set(yamls) == set(REGISTRY_FILES)
    data_dir = DEFAULT_REPO_DIR.parent / "data"
    for store, name in yamls.items():
        declared = yaml.safe_load((DEFAULT_REPO_DIR / name).read_text())["registry"]
        assert (DEFAULT_REPO_DIR / declared).resolve() == registry_path(data_dir, store).resolve()
    assert registry_path(Path("d")) == Path("d/registry.db")
    assert registry_path(Path("d"), "postgres") == Path("d/registry.postgres.db")
