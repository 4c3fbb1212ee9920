from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from canonical import contract


def test_fifteen_features_in_canonical_order() -> None:
    assert contract.FEATURE_NAMES == (
        "log_ret_5m", "log_ret_1h", "log_ret_4h", "rsi_9", "atr_pct", "adx_14",
        "dxy_z", "dxy_change_1d", "vix_z", "embi_z", "brent_change_1d", "rate_spread",
        "usdmxn_change_1d", "position", "time_normalized",
    )  # fmt: skip
    assert [f.index for f in contract.FEATURES] == list(range(15))
    assert {f.dtype for f in contract.FEATURES} == {"float32"}


def test_views_and_ttls() -> None:
    assert [(v.name, v.ttl) for v in contract.VIEWS] == [
        ("technical_features", timedelta(hours=24)),
        ("macro_features", timedelta(hours=24)),
        ("state_features", timedelta(hours=1)),
    ]
    assert [contract.view_slice(v) for v in contract.VIEWS] == [
        slice(0, 6),
        slice(6, 13),
        slice(13, 15),
    ]
    for view in contract.VIEWS:
        for name in view.features:
            assert contract.FEATURES[contract.FEATURE_INDEX[name]].view == view.name


def test_hash_is_recomputable_from_its_documented_recipe() -> None:
    payload = [{"dtype": "float32", "name": f.name, "view": f.view} for f in contract.FEATURES]
    blob = json.dumps(payload, separators=(",", ":")).encode()
    assert contract.CONTRACT_HASH == hashlib.sha256(blob).hexdigest()
