"""The registry that apply leaves behind matches canonical.contract, read back from disk."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from feast import FeatureStore, ValueType
from feast.data_source import PushSource
from feast.infra.offline_stores.file_source import FileSource
from feast.repo_operations import get_repo_files
from feast.types import Float32

from canonical import contract
from pipeline.feast_repo import open_feature_store
from tests.integration.feast._support import address_of, copy_feature_repo

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry_store(materialized) -> FeatureStore:
    # A new store reads the registry file: what a later `feast` command or process sees.
    return open_feature_store(materialized.repo.repo_dir, address_of(materialized.redis))


def test_project_and_entity(registry_store: FeatureStore) -> None:
    assert registry_store.project == contract.PROJECT
    assert [p.name for p in registry_store.list_projects()] == [contract.PROJECT]
    entity = registry_store.get_entity(contract.ENTITY)
    assert entity.join_key == contract.ENTITY
    assert entity.value_type == ValueType.STRING


def test_views_match_the_contract(registry_store: FeatureStore) -> None:
    views = {fv.name: fv for fv in registry_store.list_feature_views()}
    assert set(views) == {v.name for v in contract.VIEWS}
    for view in contract.VIEWS:
        fv = views[view.name]
        assert [f.name for f in fv.features] == list(view.features)
        assert all(f.dtype == Float32 for f in fv.features)
        assert fv.ttl == view.ttl
        assert fv.online is True
        assert fv.entities == [contract.ENTITY]
        source = fv.batch_source
        assert isinstance(source, FileSource)
        assert source.path == f"../data/offline/{view.name}.parquet"
        assert source.timestamp_field == "event_timestamp"
        assert source.created_timestamp_column == "created"
    assert views["technical_features"].ttl == timedelta(hours=24)
    assert views["state_features"].ttl == timedelta(hours=1)


def test_state_features_has_a_push_source(registry_store: FeatureStore) -> None:
    push = registry_store.get_data_source("state_push")
    assert isinstance(push, PushSource)
    assert isinstance(push.batch_source, FileSource)
    assert push.batch_source.path == "../data/offline/state_features.parquet"
    state = registry_store.get_feature_view(contract.STATE.name)
    assert state.stream_source is not None
    assert state.stream_source.name == "state_push"
    others = [registry_store.get_feature_view(v.name) for v in (contract.TECHNICAL, contract.MACRO)]
    assert all(fv.stream_source is None for fv in others)


def test_feature_service_is_in_contract_order(registry_store: FeatureStore) -> None:
    service = registry_store.get_feature_service(contract.FEATURE_SERVICE)
    assert [p.name for p in service.feature_view_projections] == [v.name for v in contract.VIEWS]
    flattened = [f.name for p in service.feature_view_projections for f in p.features]
    assert flattened == list(contract.FEATURE_NAMES)
    assert service.tags["contract_hash"] == contract.CONTRACT_HASH


def test_feastignore_leaves_only_the_definitions(tmp_path: Path) -> None:
    repo = copy_feature_repo(tmp_path).repo_dir
    for stray in ("make_data.py", "features_old.py", "feature.py", "test_features.py"):
        (repo / stray).write_text("raise SystemExit('a script feast apply must not run')\n")
    (repo / "scripts").mkdir()
    (repo / "scripts" / "features.py").write_text("raise SystemExit('nested')\n")
    assert get_repo_files(repo) == [(repo / "features.py").resolve()]
