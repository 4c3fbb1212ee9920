"""Feast definitions of the USD/COP observation, derived from canonical.contract.

What enters: the contract (canonical/contract.py), the offline store type
(``FEAST_OFFLINE_STORE_TYPE``, parsed by pipeline.settings: ``file``, the default, or
``postgres``) and the offline tables: ../data/offline/<view>.parquet written by
canonical.offline_tables, or the PostgreSQL tables of offline_store/sql/ (one per view), each
view's source made by offline_store.feast_sources.
What leaves: the Entity ``symbol``, one FeatureView per contract view (features, float32
dtypes and TTLs from the contract), a PushSource for live positions on ``state_features``,
and the FeatureService ``observation_15d`` with the views in contract order.

No feature name or TTL is written here: everything comes from the contract, so this file
cannot drift from the server, the fallback or the tests.
"""

from __future__ import annotations

import os

from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    Project,
    PushSource,
    ValueType,
)
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)
from feast.types import Float32, PrimitiveFeastType

from canonical import contract
from offline_store.feast_sources import batch_source
from pipeline.settings import offline_store_type_from_env

_FEAST_DTYPES: dict[str, PrimitiveFeastType] = {"float32": Float32}
STATE_PUSH_SOURCE = "state_push"
"""Name of the PushSource that live positions are pushed through (feast push / PushState)."""

project = Project(
    name=contract.PROJECT,
    description=f"Observation features of the USD/COP RL agent ({contract.CONTRACT_ID}).",
)

symbol = Entity(
    name=contract.ENTITY,
    join_keys=[contract.ENTITY],
    value_type=ValueType.STRING,
    description="Traded symbol, e.g. USDCOP.",
)


OFFLINE_STORE_TYPE = offline_store_type_from_env(os.environ)
"""``file`` or ``postgres``: which kind of source every view reads."""


def _offline_source(view: contract.FeatureView) -> FileSource | PostgreSQLSource:
    return batch_source(OFFLINE_STORE_TYPE, view)


def _index_range(view: contract.FeatureView) -> str:
    where = contract.view_slice(view)
    return f"{where.start}-{where.stop - 1}"


def _feature_view(
    view: contract.FeatureView, source: FileSource | PostgreSQLSource | PushSource
) -> FeatureView:
    by_name = {f.name: f for f in contract.FEATURES}
    return FeatureView(
        name=view.name,
        entities=[symbol],
        ttl=view.ttl,
        schema=[Field(name=n, dtype=_FEAST_DTYPES[by_name[n].dtype]) for n in view.features],
        online=True,
        source=source,
        description=f"{contract.CONTRACT_ID} observation features {_index_range(view)}.",
    )


state_push = PushSource(
    name=STATE_PUSH_SOURCE,
    batch_source=_offline_source(contract.STATE),
    description="Live positions of the agent; materialization reads the batch source.",
)

technical_features = _feature_view(contract.TECHNICAL, _offline_source(contract.TECHNICAL))
macro_features = _feature_view(contract.MACRO, _offline_source(contract.MACRO))
state_features = _feature_view(contract.STATE, state_push)

_VIEW_OBJECTS = {v.name: v for v in (technical_features, macro_features, state_features)}
assert set(_VIEW_OBJECTS) == set(contract.VIEW_BY_NAME), "one FeatureView per contract view"

observation_15d = FeatureService(
    name=contract.FEATURE_SERVICE,
    features=[_VIEW_OBJECTS[v.name] for v in contract.VIEWS],
    description=f"The {contract.CONTRACT_ID} observation, in contract order.",
    tags={"contract_id": contract.CONTRACT_ID, "contract_hash": contract.CONTRACT_HASH},
)
