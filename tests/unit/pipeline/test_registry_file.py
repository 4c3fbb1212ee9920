"""The registry reader over Feast's vendored schema: what it extracts, what it refuses, and that
the vendored descriptor set is the installed Feast's (regenerate with ``make generate``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from canonical import contract
from pipeline.registry_file import (
    ContractMismatchError,
    RegistryError,
    read_registry,
    require_contract_match,
)
from pipeline.registry_schema import SCHEMA, export_schema, registry_message

ENDS = (datetime(2026, 1, 9, 18, 0, tzinfo=UTC), datetime(2026, 1, 9, 18, 5, 0, 123456, tzinfo=UTC))


def _registry_bytes(contract_hash: str) -> bytes:
    registry = registry_message()()
    service = registry.feature_services.add().spec
    service.name, service.project = contract.FEATURE_SERVICE, contract.PROJECT
    service.tags["contract_hash"] = contract_hash
    for view in contract.VIEWS:
        projection = service.features.add()
        projection.feature_view_name = view.name
        for name in view.features:
            projection.feature_columns.add().name = name
        registered = registry.feature_views.add()
        registered.spec.name, registered.spec.project = view.name, contract.PROJECT
        for end in ENDS if view is contract.TECHNICAL else ():
            interval = registered.meta.materialization_intervals.add()
            interval.end_time.seconds = int(end.timestamp())
            interval.end_time.nanos = end.microsecond * 1000 + 999  # below a microsecond: dropped
    return bytes(registry.SerializeToString())


def test_the_summary_holds_the_service_the_views_and_the_latest_interval(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    path.write_bytes(_registry_bytes(contract.CONTRACT_HASH))
    summary = read_registry(path)
    service = require_contract_match(summary, path)
    assert service.tags == {"contract_hash": contract.CONTRACT_HASH}
    assert service.features == tuple(f"{f.view}:{f.name}" for f in contract.FEATURES)
    technical = summary.view(contract.TECHNICAL.name)
    assert technical is not None and technical.materialized_until == ENDS[1]
    state = summary.view(contract.STATE.name)
    assert state is not None and state.materialized_until is None


def test_another_contract_hash_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    path.write_bytes(_registry_bytes("0" * 64))
    with pytest.raises(ContractMismatchError, match="000000000000"):
        require_contract_match(read_registry(path), path)


@pytest.mark.parametrize("blob", [b"\xff\xff\xff", b"not a registry at all", b"\x0a\x05ab"])
def test_a_file_that_is_no_registry_is_one_clear_error(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "registry.db"
    path.write_bytes(blob)
    with pytest.raises(RegistryError, match="is not a Feast registry"):
        read_registry(path)
    with pytest.raises(RegistryError, match="pipeline apply"):
        read_registry(tmp_path / "missing.db")


def test_the_vendored_schema_is_the_installed_feasts() -> None:
    assert SCHEMA.read_bytes() == export_schema(), "stale: run `make generate` and commit"
