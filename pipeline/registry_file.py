"""Feast's file registry (``data/registry.db``) read without importing Feast.

What enters: the path of the registry file Feast writes (a serialized ``feast.core.Registry``
proto). What leaves: a :class:`RegistrySummary` of what the project checks -- per feature
service its name, tags (``contract_hash``) and features in order; per feature view its name
and materialization intervals -- and :func:`require_contract_match`, which raises when the
registry's contract hash is not the code's.

Why not Feast: ``import feast`` costs about 4 s, and ``python -m pipeline doctor`` and the
L1b contract check only need four fields. The file is parsed with Feast's own schema, vendored
as a descriptor set (``pipeline.registry_schema``), and a test compares this reader with
Feast's own parse of a registry written by ``feast apply``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from canonical import contract
from pipeline.registry_schema import registry_message


class RegistryError(RuntimeError):
    """The registry file is missing or is not a Feast registry."""


class ContractMismatchError(RuntimeError):
    """The registry serves a contract hash other than the code's (apply from another version)."""


@dataclass(frozen=True)
class ServiceEntry:
    """One feature service as registered."""

    name: str
    project: str
    tags: dict[str, str]
    features: tuple[str, ...]
    """``view:feature`` in the service's order."""


@dataclass(frozen=True)
class ViewEntry:
    """One feature view as registered."""

    name: str
    project: str
    materialized_until: datetime | None
    """End of the latest materialization interval (UTC); None when never materialized."""


@dataclass(frozen=True)
class RegistrySummary:
    """What the project reads from the registry."""

    services: tuple[ServiceEntry, ...]
    views: tuple[ViewEntry, ...]

    def service(self, name: str = contract.FEATURE_SERVICE) -> ServiceEntry | None:
        """The feature service ``name`` of the contract's project, if registered."""
        for entry in self.services:
            if entry.name == name and entry.project == contract.PROJECT:
                return entry
        return None

    def view(self, name: str) -> ViewEntry | None:
        """The feature view ``name`` of the contract's project, if registered."""
        for entry in self.views:
            if entry.name == name and entry.project == contract.PROJECT:
                return entry
        return None


REGISTRY_FILES = {"file": "registry.db", "postgres": "registry.postgres.db"}
"""The registry file of each offline store type: ``registry:`` in ``feature_store.yaml`` and in
``feature_store.postgres.yaml`` (a unit test keeps them in step)."""


def registry_path(data_dir: Path, offline_store: str = "file") -> Path:
    """Where the repository's yaml for ``offline_store`` (FEAST_OFFLINE_STORE_TYPE) puts the
    registry: ``../data/registry.db``, or ``../data/registry.postgres.db`` with PostgreSQL."""
    return Path(data_dir) / REGISTRY_FILES[offline_store]


def read_registry(path: Path) -> RegistrySummary:
    """Parse the registry file; RegistryError when it is missing or malformed."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise RegistryError(
            f"no Feast registry at {path}: run `python -m pipeline apply` (feast apply)"
        ) from None
    try:
        registry = registry_message().FromString(raw)
    except DecodeError as exc:
        raise RegistryError(f"{path} is not a Feast registry: {exc}") from None
    services = [_service(proto.spec) for proto in registry.feature_services]
    views = [_view(proto) for proto in registry.feature_views]
    return RegistrySummary(services=tuple(services), views=tuple(views))


def require_contract_match(summary: RegistrySummary, where: Path) -> ServiceEntry:
    """The contract's feature service; ContractMismatchError unless its ``contract_hash`` tag
    and its features (names and order) are the code's."""
    service = summary.service()
    if service is None:
        raise ContractMismatchError(
            f"feature service {contract.FEATURE_SERVICE} is not in the registry {where}: "
            "run `python -m pipeline apply` with this version of the code"
        )
    registered = service.tags.get("contract_hash", "")
    if registered != contract.CONTRACT_HASH:
        raise ContractMismatchError(
            f"contract hash in the registry {where} is {registered[:12] or '(none)'}..., the "
            f"code's is {contract.CONTRACT_HASH[:12]}...: the registry was applied from another "
            "version; run `python -m pipeline apply` from the deployed code"
        )
    expected = tuple(f"{f.view}:{f.name}" for f in contract.FEATURES)
    if service.features != expected:
        raise ContractMismatchError(
            f"feature service {service.name} in {where} lists {len(service.features)} features "
            f"{'in another order' if sorted(service.features) == sorted(expected) else ''}, the "
            f"contract {len(expected)}: run `python -m pipeline apply`"
        )
    return service


def _service(spec: Any) -> ServiceEntry:
    features = tuple(
        f"{projection.feature_view_name}:{column.name}"
        for projection in spec.features
        for column in projection.feature_columns
    )
    return ServiceEntry(spec.name, spec.project, dict(spec.tags), features)


def _view(proto: Any) -> ViewEntry:
    ends = [_timestamp(i.end_time) for i in proto.meta.materialization_intervals]
    return ViewEntry(proto.spec.name, proto.spec.project, max(ends, default=None))


def _timestamp(proto: Any) -> datetime:
    # Exact to the microsecond (a float of seconds + nanos would round).
    return datetime.fromtimestamp(proto.seconds, tz=UTC) + timedelta(
        microseconds=proto.nanos // 1000
    )
