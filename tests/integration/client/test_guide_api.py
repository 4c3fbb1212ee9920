"""The integration guide's inference snippets, run as the guide writes them (minus ``src.``),
against a real server and Redis, and the guide API's values checked bit for bit."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from canonical import contract
from canonical.builder import CanonicalFeatureBuilder as Builder
from client import ObservationClient
from devstack.embedded_redis import EmbeddedRedis, free_port
from feature_store import (
    CanonicalFeatureBuilder,
    FeastInferenceService,
    FeastUnavailableError,
    get_features_with_fallback,
)
from market_data import columnar, files
from online_store import feast_layout
from tests.integration.client.conftest import PROJECT, STORE_VALUES, ServerThread

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "feast-integration-guide.md"
"""The integration guide the project implements (a copy of the seed document)."""


def _section_code(title: str) -> list[str]:
    """The python blocks of the guide's section ``title`` (to the next heading of its level)."""
    text = GUIDE.read_text()
    level = title.split(" ", maxsplit=1)[0]
    start = text.index(title)
    rest = text[start + len(title) :]
    end = re.search(rf"^{level} ", rest, flags=re.MULTILINE)
    section = rest[: end.start()] if end else rest
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return [block.replace("from src.", "from ") for block in blocks]


def _store_dict() -> dict[str, float]:
    values = np.asarray(STORE_VALUES, dtype=np.float32)
    return {name: float(values[i]) for i, name in enumerate(contract.FEATURE_NAMES)}


def _offline_row(data_dir: Path, symbol: str = "USDCOP") -> tuple[int, dict[str, float]]:
    """The offline table's last row (the canonical builder's batch output)."""
    bars = columnar.read_bars(files.bars_path(data_dir), (symbol,))[symbol]
    rows = Builder().batch(bars, columnar.read_macro(files.macro_path(data_dir)))
    values = rows.values[-1]
    return int(rows.event_time_ns[-1]), dict(
        zip(contract.FEATURE_NAMES, (float(v) for v in values), strict=True)
    )


@pytest.fixture
def dead_target() -> str:
    return f"127.0.0.1:{free_port()}"


pytestmark = pytest.mark.integration


def test_the_inference_snippet_returns_the_served_features(
    real_server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USDCOP_TARGET", real_server.target)
    service_snippet = _section_code("### FeastInferenceService")[0]
    namespace: dict[str, Any] = {}
    exec(compile(service_snippet, "guide:FeastInferenceService", "exec"), namespace)
    namespace["feast_service"].close()
    assert namespace["features"] == _store_dict()
    assert list(namespace["features"]) == list(contract.FEATURE_NAMES)


def test_the_fallback_snippet_builds_the_offline_row(
    raw_data_dir: Path, dead_target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USDCOP_DATA_DIR", str(raw_data_dir))
    event_ns, offline = _offline_row(raw_data_dir)
    fallback_snippet = _section_code("### Fallback Mechanism")[0]
    with FeastInferenceService(dead_target, timeout_s=0.3) as feast_service:
        namespace: dict[str, Any] = {
            "feast_service": feast_service,
            "FeastUnavailableError": FeastUnavailableError,
            "CanonicalFeatureBuilder": CanonicalFeatureBuilder,
            "timestamp": np.datetime64(event_ns, "ns"),
        }
        exec(compile(fallback_snippet, "guide:Fallback Mechanism", "exec"), namespace)
    assert namespace["features"] == offline


def test_the_error_handling_snippet_serves_then_falls_back(
    real_server: ServerThread, raw_data_dir: Path, dead_target: str
) -> None:
    snippet = _section_code("### 4. Error Handling")[0]
    canonical_builder = CanonicalFeatureBuilder.for_inference(raw_data_dir)
    _, offline = _offline_row(raw_data_dir)
    for target, expected in ((real_server.target, _store_dict()), (dead_target, offline)):
        with FeastInferenceService(target, timeout_s=0.3) as feast_service:
            namespace: dict[str, Any] = {
                "feast_service": feast_service,
                "canonical_builder": canonical_builder,
                "logger": logging.getLogger("guide"),
            }
            exec(compile(snippet, "guide:Error Handling", "exec"), namespace)
            assert namespace["get_features_with_fallback"]("USDCOP") == expected


def test_build_observation_equals_every_offline_row_and_the_servers_fallback(
    real_server: ServerThread, redis_server: EmbeddedRedis, raw_data_dir: Path
) -> None:
    builder = CanonicalFeatureBuilder.for_inference(raw_data_dir)
    symbol = "USDCOP"
    bars = columnar.read_bars(files.bars_path(raw_data_dir), (symbol,))[symbol]
    rows = Builder().batch(bars, columnar.read_macro(files.macro_path(raw_data_dir)))
    picks = np.random.default_rng(7).choice(len(rows), size=min(25, len(rows)), replace=False)
    for i in picks:
        event_ns, values = builder.observation_values(int(rows.event_time_ns[i]), symbol)
        assert event_ns == rows.event_time_ns[i]
        assert values.tobytes() == rows.values[i].tobytes()
        # An instant inside the next bar still sees this bar (its close is the last known).
        later, _ = builder.observation_values(int(rows.event_time_ns[i]) + 299 * 10**9, symbol)
        assert later == event_ns
    # The server answers from its fallback once the store's row is gone: the same bits.
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    try:
        client.delete(feast_layout.entity_key(symbol, PROJECT))
    finally:
        client.close()
    with ObservationClient(real_server.target) as obs:
        served = obs.get(symbol)
    assert {view.source for view in served.views} == {"compute_fallback"}
    local = builder.build_features(symbol)
    served_dict = dict(zip(contract.FEATURE_NAMES, (float(v) for v in served.values), strict=True))
    technical_and_macro = [f.name for f in contract.FEATURES if f.view != "state_features"]
    assert {n: local[n] for n in technical_and_macro} == {
        n: served_dict[n] for n in technical_and_macro
    }


def test_get_features_with_fallback_uses_the_server_then_the_files(
    real_server: ServerThread, raw_data_dir: Path, dead_target: str
) -> None:
    builder = CanonicalFeatureBuilder.for_inference(raw_data_dir)
    with FeastInferenceService(real_server.target) as up:
        assert get_features_with_fallback("USDCOP", service=up, builder=builder) == _store_dict()
    with FeastInferenceService(dead_target, timeout_s=0.3) as down:
        got = get_features_with_fallback("USDCOP", service=down, builder=builder)
    assert got == _offline_row(raw_data_dir)[1]


def test_bad_requests_get_precise_errors(real_server: ServerThread) -> None:
    with FeastInferenceService(real_server.target) as service:
        with pytest.raises(ValueError, match="unknown feature service"):
            service.get_online_features([{"symbol": "USDCOP"}], feature_service="other")
        with pytest.raises(ValueError, match="entity row"):
            service.get_online_features([{"ticker": "USDCOP"}])
        with pytest.raises(KeyError):
            service.get_online_features("EURUSD")
        with pytest.raises(ValueError, match="INVALID_ARGUMENT"):
            service.get_online_features("bad symbol!")
        both = service.get_online_features([{"symbol": "USDCOP"}, {"symbol": "USDCOP"}])
    assert both == {name: [value, value] for name, value in _store_dict().items()}
