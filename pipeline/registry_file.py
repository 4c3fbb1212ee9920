"""Feast's file registry (``data/registry.db``) read without importing Feast.

What enters: the path of the registry file Feast writes (a serialized ``feast.core.Registry``
proto). What leaves: a :class:`RegistrySummary` of what the project checks -- per feature
service its name, tags (``contract_hash``) and features in order; per feature view its name
and materialization intervals -- and :func:`require_contract_match`, which raises when the
registry's contract hash is not the code's.

Why not Feast: ``import feast`` costs about 4 s, and ``python -m pipeline doctor`` and the
L1b contract check only need four fields. The proto wire format is walked here the way
``server/feast_layout.py`` walks Feast's values; the field numbers are Feast's (``Registry.proto``,
``FeatureService.proto``, ``FeatureView.proto``) and a test compares this reader with Feast's
own parse of a registry written by ``feast apply``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from canonical import contract

# Field numbers (feast/protos/feast/core/*.proto).
_REGISTRY_FEATURE_VIEWS = 6
_REGISTRY_FEATURE_SERVICES = 7
_SPEC, _META = 1, 2
_NAME = 1
_PROJECT = 2
_SERVICE_FEATURES, _SERVICE_TAGS = 3, 4
_PROJECTION_VIEW_NAME, _PROJECTION_COLUMNS = 1, 2
_VIEW_MATERIALIZATION_INTERVALS = 3
_INTERVAL_START, _INTERVAL_END = 1, 2
_TIMESTAMP_SECONDS, _TIMESTAMP_NANOS = 1, 2
_MAP_KEY, _MAP_VALUE = 1, 2

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


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
        services, views = [], []
        for number, value in _fields(raw):
            if number == _REGISTRY_FEATURE_SERVICES and isinstance(value, bytes):
                services.append(_service(value))
            elif number == _REGISTRY_FEATURE_VIEWS and isinstance(value, bytes):
                views.append(_view(value))
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path} is not a Feast registry: {exc}") from None
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


def _service(raw: bytes) -> ServiceEntry:
    name = project = ""
    tags: dict[str, str] = {}
    features: list[str] = []
    for number, value in _fields(raw):
        if number != _SPEC or not isinstance(value, bytes):
            continue
        for spec_number, spec_value in _fields(value):
            if not isinstance(spec_value, bytes):
                continue
            if spec_number == _NAME:
                name = spec_value.decode()
            elif spec_number == _PROJECT:
                project = spec_value.decode()
            elif spec_number == _SERVICE_TAGS:
                entry = dict(_fields(spec_value))
                key, tag = entry.get(_MAP_KEY, b""), entry.get(_MAP_VALUE, b"")
                if isinstance(key, bytes) and isinstance(tag, bytes):
                    tags[key.decode()] = tag.decode()
            elif spec_number == _SERVICE_FEATURES:
                features.extend(_projection(spec_value))
    return ServiceEntry(name=name, project=project, tags=tags, features=tuple(features))


def _projection(raw: bytes) -> list[str]:
    view, columns = "", []
    for number, value in _fields(raw):
        if number == _PROJECTION_VIEW_NAME and isinstance(value, bytes):
            view = value.decode()
        elif number == _PROJECTION_COLUMNS and isinstance(value, bytes):
            for column_number, column_value in _fields(value):
                if column_number == _NAME and isinstance(column_value, bytes):
                    columns.append(column_value.decode())
    return [f"{view}:{column}" for column in columns]


def _view(raw: bytes) -> ViewEntry:
    name = project = ""
    ends: list[datetime] = []
    for number, value in _fields(raw):
        if not isinstance(value, bytes):
            continue
        if number == _SPEC:
            for spec_number, spec_value in _fields(value):
                if spec_number == _NAME and isinstance(spec_value, bytes):
                    name = spec_value.decode()
                elif spec_number == _PROJECT and isinstance(spec_value, bytes):
                    project = spec_value.decode()
        elif number == _META:
            for meta_number, meta_value in _fields(value):
                if meta_number == _VIEW_MATERIALIZATION_INTERVALS and isinstance(meta_value, bytes):
                    interval = dict(_fields(meta_value))
                    end = interval.get(_INTERVAL_END)
                    if isinstance(end, bytes):
                        ends.append(_timestamp(end))
    return ViewEntry(name=name, project=project, materialized_until=max(ends, default=None))


def _timestamp(raw: bytes) -> datetime:
    fields = dict(_fields(raw))
    seconds, nanos = fields.get(_TIMESTAMP_SECONDS, 0), fields.get(_TIMESTAMP_NANOS, 0)
    if not isinstance(seconds, int) or not isinstance(nanos, int):
        raise ValueError("malformed Timestamp")
    # Exact to the microsecond (a float of seconds + nanos would round).
    return datetime.fromtimestamp(seconds, tz=UTC) + timedelta(microseconds=nanos // 1000)


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = raw[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(raw: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of one message: varints as int, length-delimited as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(raw):
        key, pos = _varint(raw, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(raw, pos)
            out.append((number, value))
        elif wire == _LEN:
            length, pos = _varint(raw, pos)
            if pos + length > len(raw):
                raise ValueError("length-delimited field runs past the end")
            out.append((number, raw[pos : pos + length]))
            pos += length
        elif wire == _I64:
            pos += 8
        elif wire == _I32:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out
