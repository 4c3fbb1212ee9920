"""A real Prometheus (Debian's ``prometheus`` binary, 127.0.0.1, a free port, temporary
storage) scrapes a running observation server and the pipeline's textfile, loads
``ops/prometheus/alerts.yml``, and answers PromQL over the real metrics -- including every
query of the Grafana dashboard, whose metric names must all exist in what it scraped."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from canonical import contract
from devstack.embedded_redis import EmbeddedRedis, free_port
from devstack.server_process import ServerProcess
from pipeline.materialize import ViewMaterialization
from pipeline.metrics import write_pipeline_metrics
from server.config import ServerConfig
from tests.integration.server.conftest import redis_client, write_observation, write_raw

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REPO_ROOT = Path(__file__).resolve().parents[3]
ALERTS = REPO_ROOT / "ops" / "prometheus" / "alerts.yml"
DASHBOARD = REPO_ROOT / "ops" / "grafana" / "observation.json"
CALLS = 12

# PromQL words that are not metric names.
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "le", "inf", "nan",
}  # fmt: skip


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    assert found, "Prometheus is needed: apt-get install -y prometheus (Debian), see .ci/run"
    return found


def metric_names(expr: str) -> set[str]:
    """Metric names used by a PromQL expression (strings, label matchers, ranges, grouping
    clauses and function calls removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        follows = text[match.end() :].lstrip()[:1]
        if follows == "(" or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [
        target["expr"]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]
    assert len(queries) >= 20
    return queries


def test_metric_names_are_extracted_from_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(grpc_server_handling_seconds_bucket{le!="x",'
        'grpc_method="A"}[5m]))) / on(job, view) group_left() usdcop_view_ttl_seconds and on() '
        "usdcop:session_open"
    )
    assert metric_names(expr) == {
        "grpc_server_handling_seconds_bucket",
        "usdcop_view_ttl_seconds",
        "usdcop:session_open",
    }


class _Textfile(http.server.BaseHTTPRequestHandler):
    """Serves one .prom file at /metrics, as node-exporter's textfile collector would expose it."""

    path_to_serve: Path

    def do_GET(self) -> None:
        body = self.path_to_serve.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def textfile_target(tmp_path: Path) -> Iterator[int]:
    now = datetime.now(UTC)
    path = write_pipeline_metrics(
        tmp_path / "pipeline-metrics",
        finished_at=now,
        materialized=[
            ViewMaterialization(
                view=view.name,
                start=now - timedelta(minutes=5),
                end=now,
                ran=True,
                seconds=0.4,
                rows_written=1,
            )
            for view in contract.VIEWS
        ],
        l1_rows=1021,
    )
    handler = type("Handler", (_Textfile,), {"path_to_serve": path})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


class Prometheus:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        answer = _get_json(url)
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def wait_for(self, expr: str, expected: float, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            result = self.query(expr)
            last = result
            if result and float(result[0]["value"][1]) == expected:
                return
            time.sleep(0.5)
        raise AssertionError(f"{expr} never became {expected}: {last}")


def start_prometheus(config: Path, port: int, storage: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            prometheus_binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


def test_prometheus_scrapes_the_server_and_evaluates_alerts_and_dashboard(
    fresh_redis: EmbeddedRedis,
    tmp_path: Path,
    textfile_target: int,
    raw_frames: Any,
) -> None:
    now_ns = time.time_ns()
    write_observation(
        redis_client(fresh_redis),
        event_ns={view.name: now_ns - 30 * 10**9 for view in contract.VIEWS},
    )
    data_dir = write_raw(tmp_path / "data", raw_frames)
    metrics_port = free_port()
    config = ServerConfig(
        redis_port=fresh_redis.port, port=0, data_dir=data_dir, metrics_port=metrics_port
    )
    with ServerProcess(config) as server:
        server.wait_serving()
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.ObservationServiceStub(channel)
            for _ in range(CALLS):
                answer = stub.GetObservation(pb.GetObservationRequest(symbol="USDCOP"), timeout=10)
                assert {v.source for v in answer.views} == {pb.VALUE_SOURCE_ONLINE_STORE}

        config, port = tmp_path / "prometheus.yml", free_port()
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(ALERTS)],
                    "scrape_configs": [
                        {
                            "job_name": "usdcop-observation",
                            "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
                        },
                        {
                            "job_name": "node",
                            "static_configs": [{"targets": [f"127.0.0.1:{textfile_target}"]}],
                        },
                    ],
                }
            )
        )
        proc = start_prometheus(config, port, tmp_path / "tsdb")
        try:
            prom = Prometheus(port)
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
                try:
                    with urllib.request.urlopen(f"{prom.base}/-/ready", timeout=2) as ready:
                        if ready.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "Prometheus not ready"
                time.sleep(0.3)

            # The real metrics, through Prometheus: the calls made above, counted once each.
            prom.wait_for(
                'sum(grpc_server_handled_total{grpc_method="GetObservation",grpc_code="OK"})',
                CALLS,
            )
            prom.wait_for('sum(up{job=~"usdcop-observation|node"})', 2)
            ages = prom.query('usdcop_view_age_seconds{symbol="USDCOP"}')
            assert {r["metric"]["view"] for r in ages} == {v.name for v in contract.VIEWS}
            assert all(30 <= float(r["value"][1]) < 600 for r in ages), ages
            cached = prom.query('sum(usdcop_view_answers_total{from_cache="true"})')
            loaded = prom.query('sum(usdcop_view_answers_total{from_cache="false"})')
            assert float(cached[0]["value"][1]) + float(loaded[0]["value"][1]) == CALLS * 3
            assert prom.query("usdcop_redis_used_memory_bytes")[0]["value"][1] != "0"

            # The alert rules loaded and evaluate without error over the real series.
            rules = _get_json(f"{prom.base}/api/v1/rules")["data"]["groups"]
            loaded_rules = {r["name"]: r for group in rules for r in group["rules"]}
            assert "UsdcopCircuitBreakerOpen" in loaded_rules
            assert "UsdcopLatencyP99AboveSlo" in loaded_rules
            time.sleep(2)  # a couple of evaluations
            rules = _get_json(f"{prom.base}/api/v1/rules")["data"]["groups"]
            unhealthy = [r["name"] for g in rules for r in g["rules"] if r["health"] == "err"]
            assert unhealthy == []

            # Every dashboard query parses and runs, and uses only metric names Prometheus
            # scraped from the server or the pipeline's textfile.
            scraped = set(_get_json(f"{prom.base}/api/v1/label/__name__/values")["data"])
            time.sleep(2.5)  # rate() needs two samples of everything
            for expr in dashboard_queries():
                missing = metric_names(expr) - scraped
                assert not missing, f"{expr}: unknown metric(s) {missing}"
                assert prom.query(expr), f"no result: {expr}"
        finally:
            stop(proc)
