"""After the pipeline, Feast's own SDK returns exactly the latest offline rows (float32 bits)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from canonical import contract
from canonical.offline_tables import offline_table_path
from tests.integration.feast._support import FRIDAY_CLOSE
from tests.integration.feast.conftest import SYMBOLS

pytestmark = pytest.mark.integration


def _latest_offline_row(data_dir, view: contract.FeatureView, symbol: str) -> pd.Series:
    table = pd.read_parquet(offline_table_path(data_dir, view.name))
    rows = table[(table["symbol"] == symbol) & (table["event_timestamp"] <= FRIDAY_CLOSE)]
    return rows.sort_values("event_timestamp").iloc[-1]


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_get_online_features_equals_latest_offline_rows(materialized, symbol: str) -> None:
    store = materialized.store
    service = store.get_feature_service(contract.FEATURE_SERVICE)
    online = store.get_online_features(
        features=service, entity_rows=[{contract.ENTITY: symbol}]
    ).to_dict(include_event_timestamps=True)

    for view in contract.VIEWS:
        expected = _latest_offline_row(materialized.repo.data_dir, view, symbol)
        assert expected["event_timestamp"] == FRIDAY_CLOSE  # the 17:55 bar closes at 18:00
        want = np.array([expected[n] for n in view.features], dtype=np.float32)
        got = np.array([online[n][0] for n in view.features], dtype=np.float32)
        # float32 -> Feast Value proto -> Python float -> float32 must round-trip exactly.
        assert got.view(np.uint32).tolist() == want.view(np.uint32).tolist(), view.name
        for name in view.features:
            assert online[f"{name}__ts"][0] == int(FRIDAY_CLOSE.timestamp())


def test_unknown_symbol_is_missing_everywhere(materialized) -> None:
    store = materialized.store
    service = store.get_feature_service(contract.FEATURE_SERVICE)
    online = store.get_online_features(
        features=service, entity_rows=[{contract.ENTITY: "NOPE"}]
    ).to_dict()
    assert all(online[name] == [None] for name in contract.FEATURE_NAMES)


def test_every_view_was_materialized_from_its_ttl_window(materialized) -> None:
    windows = {m.view: m for m in materialized.result.materialized}
    for view in contract.VIEWS:
        window = windows[view.name]
        assert window.ran
        assert window.end == FRIDAY_CLOSE
        assert window.start == FRIDAY_CLOSE - view.ttl
