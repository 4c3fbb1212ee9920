"""Data materialized at Friday's close is fresh then and expired by Sunday.

Feast's SDK does not enforce TTLs (it still returns the values); the pipeline's observation
reader judges them against the injected ``now``. The other half (materializing on Sunday writes
nothing) is tests/integration/pipeline/test_freshness.py."""

from __future__ import annotations

import pytest

from canonical import contract
from pipeline.feast_online import read_online_observation
from tests.integration.feast._support import FRIDAY_CLOSE, SUNDAY_NOON, dump_redis

pytestmark = pytest.mark.integration


def test_friday_close_writes_every_view_and_it_expires_by_sunday(materialized) -> None:
    store = materialized.store
    at_close = read_online_observation(store, "USDCOP", FRIDAY_CLOSE)
    assert [v.status for v in at_close.views] == ["fresh"] * len(contract.VIEWS)
    assert all(v.event_time == FRIDAY_CLOSE for v in at_close.views)
    assert None not in at_close.values

    on_sunday = read_online_observation(store, "USDCOP", SUNDAY_NOON)
    assert [v.status for v in on_sunday.views] == ["expired"] * len(contract.VIEWS)
    assert on_sunday.values == at_close.values  # Feast still returns them: TTL is ours to judge
    assert len(dump_redis(materialized.redis)) == 2  # USDCOP and USDMXN
