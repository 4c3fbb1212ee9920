"""The Feast repository (``feature_repo/``): open its FeatureStore and apply its definitions.

What enters: the repository folder, the Redis address and the offline store
(``offline_store.store``). What leaves: a ``FeatureStore`` configured from the store's yaml
(``feature_store.yaml`` for the files, ``feature_store.postgres.yaml`` for PostgreSQL), whose
``${FEAST_REDIS_*}`` / ``${POSTGRES_*}`` placeholders are filled from the addresses, and, after
:func:`apply_definitions`, a registry holding the objects that ``features.py`` defines for that
offline store (``FileSource`` or ``PostgreSQLSource`` per view).

Apply runs in-process (``FeatureStore.apply`` on the objects ``features.py`` defines) rather
than as a ``feast apply`` subprocess: the subprocess would pay Feast's import again (about 4-8 s
here) on every run, and the result is the same registry because both read the same
``features.py``. Objects are collected the way ``feast apply`` collects them (every Feast object
at module level). ``feast apply`` stays available for the seed's diagnostics
(``python -m pipeline feast apply``).

``import feast`` costs seconds, so it happens inside these functions, never at import time
(``python -m pipeline --help`` stays fast).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from offline_store.factory import open_store
from offline_store.store import FEAST_KIND_VARIABLE, OfflineStore
from online_store.address import RedisAddress

if TYPE_CHECKING:
    from feast import FeatureStore

DEFINITIONS_FILE = "features.py"
"""The only file of the repository that holds definitions (see its .feastignore)."""


@contextmanager
def _exported(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def open_feature_store(
    repo_dir: Path, redis: RedisAddress, offline: OfflineStore | None = None
) -> FeatureStore:
    """A FeatureStore over ``repo_dir`` whose online store is ``redis`` and whose offline store
    is ``offline`` (the parquet files of ``repo_dir/../data`` when None).

    The ``FEAST_REDIS_*`` (and the offline store's: ``POSTGRES_*``) variables are set in
    ``os.environ`` while the store is constructed: Feast expands them when it reads the yaml,
    then keeps the result.
    """
    from feast import FeatureStore

    offline = offline or open_store(Path(repo_dir).resolve().parent / "data")
    with redis.exported(), _exported(offline.feast_env()):
        return FeatureStore(
            repo_path=str(Path(repo_dir).resolve()), fs_yaml_file=offline.feast_yaml(repo_dir)
        )


def load_definitions(repo_dir: Path, offline_store_type: str = "file") -> list[Any]:
    """The Feast objects ``<repo_dir>/features.py`` defines at module level, in a stable order,
    for the offline store ``offline_store_type`` (``file`` or ``postgres``).

    The file is imported under a module name derived from its path and the store type, so two
    repositories (a test copy and the checkout) or two store types never share a cached module.
    """
    module = _import_definitions(Path(repo_dir).resolve() / DEFINITIONS_FILE, offline_store_type)
    from feast import Entity, FeatureService, FeatureView, Project
    from feast.data_source import DataSource

    kinds = (Project, Entity, DataSource, FeatureView, FeatureService)
    found: list[Any] = []
    for name in sorted(vars(module)):
        obj = getattr(module, name)
        if isinstance(obj, kinds) and not any(obj is seen for seen in found):
            found.append(obj)
    return found


def apply_definitions(store: FeatureStore, repo_dir: Path) -> list[str]:
    """Register ``features.py``'s objects; returns the names of the objects applied.

    Idempotent: Feast's registry keeps an unchanged view as it is (materialization intervals
    included), so a second apply changes nothing in Redis or in what the registry serves.
    """
    objects = load_definitions(repo_dir, str(store.config.offline_store.type))
    store.apply(objects)
    return [str(obj.name) for obj in objects]


def _import_definitions(path: Path, offline_store_type: str) -> ModuleType:
    if not path.is_file():
        raise FileNotFoundError(f"Feast definitions not found: {path}")
    digest = hashlib.sha256(f"{path}:{offline_store_type}".encode()).hexdigest()[:12]
    module_name = f"_usdcop_feature_repo_{digest}"
    cached = sys.modules.get(module_name)
    if cached is not None:
        return cached
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import Feast definitions from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        with _exported({FEAST_KIND_VARIABLE: offline_store_type}):
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
