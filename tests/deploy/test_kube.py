"""deploy/k8s/ run with `podman kube play`, the parts podman 4.3 plays: the Deployments (both
server replicas, the pipeline with its node-exporter sidecar), the ConfigMap, a PVC. What it
does not play is adapted here, mechanically, and the rest is validated against the Kubernetes
schemas (tests/unit/deploy):

- StatefulSets (Redis, PostgreSQL) are played as Deployments of the same pod template, their
  volumeClaimTemplates as PVCs (podman volumes);
- Services are not played: pods reach each other by pod name (`<deployment>-pod-0`), so the
  ConfigMap's hosts name the pods;
- the Secret is created as a podman secret in the JSON form `kube play` reads (4.3 stores a
  played Secret in a form its own secretKeyRef cannot read);
- gRPC probes are not run by podman: the test calls grpc.health.v1 in each replica itself;
- containerPorts are dropped: podman 4.3 publishes each on the host's same port;
- every name gets the run id, and the official images' names become the stand-ins'.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from canonical import contract
from tests.deploy import _podman
from tests.deploy._observations import online_rows
from tests.deploy.test_compose import server_memory_limit_mib

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(600)]

K8S = _podman.DEPLOY / "k8s"
OFFICIAL_TO_STANDIN = {
    "docker.io/library/redis:7.0-bookworm": _podman.STANDINS["REDIS_IMAGE"],
    "docker.io/library/postgres:15-bookworm": _podman.STANDINS["POSTGRES_IMAGE"],
    "quay.io/prometheus/node-exporter:v1.8.2": _podman.STANDINS["NODE_EXPORTER_IMAGE"],
    "localhost/usdcop-observation:server": f"{_podman.IMAGE}:server",
    "localhost/usdcop-observation:pipeline": f"{_podman.IMAGE}:pipeline",
}
HEALTH = (
    "import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; "
    "s = g.HealthStub(grpc.insecure_channel('127.0.0.1:50051')).Check(h.HealthCheckRequest(), "
    "timeout=3).status; print(h.HealthCheckResponse.ServingStatus.Name(s)); "
    "sys.exit(s != h.HealthCheckResponse.SERVING)"
)


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


@dataclass(frozen=True)
class Played:
    run: str
    files: tuple[Path, ...]
    configmap: Path
    network: str
    secret: str
    volumes_before: frozenset[str]

    def pod(self, deployment: str, index: int = 0) -> str:
        return f"{self.run}-{deployment}-pod-{index}"

    def container(self, deployment: str, container: str, index: int = 0) -> str:
        return f"{self.pod(deployment, index)}-{container}"


def render(run: str, secret: str) -> dict[str, list[dict[str, Any]]]:
    """The manifests as podman plays them (module docstring), by stage."""

    def named(name: str) -> str:
        return f"{run}-{name}"

    def adapt_pod(spec: dict[str, Any]) -> None:
        for container in spec["containers"]:
            container["image"] = OFFICIAL_TO_STANDIN.get(container["image"], container["image"])
            # podman 4.3 publishes each containerPort on the host's same port (two replicas,
            # or anything else on the machine, would collide); the pods' ports are reached
            # from inside them here, and probes name ports by number.
            container.pop("ports", None)
            for source in container.get("envFrom", []):
                source["configMapRef"]["name"] = named(source["configMapRef"]["name"])
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    ref["secretKeyRef"]["name"] = secret
                if "configMapKeyRef" in ref:
                    ref["configMapKeyRef"]["name"] = named(ref["configMapKeyRef"]["name"])
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]
                claim["claimName"] = named(claim["claimName"])

    def adapt(doc: dict[str, Any]) -> list[dict[str, Any]]:
        doc = copy.deepcopy(doc)
        kind = doc["kind"]
        doc["metadata"]["name"] = named(doc["metadata"]["name"])
        if kind in ("Service", "PodDisruptionBudget"):
            return []  # not played by podman; schema-checked in tests/unit/deploy
        extra: list[dict[str, Any]] = []
        if kind == "StatefulSet":
            doc["kind"] = "Deployment"
            spec = doc["spec"]
            spec.pop("serviceName")
            for claim in spec.pop("volumeClaimTemplates", []):
                claim_name = f"{doc['metadata']['name']}-{claim['metadata']['name']}"
                extra.append(
                    {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                     "metadata": {"name": claim_name}, "spec": claim["spec"]}
                )  # fmt: skip
                spec["template"]["spec"].setdefault("volumes", []).append(
                    {"name": claim["metadata"]["name"],
                     "persistentVolumeClaim": {"claimName": claim_name}}
                )  # fmt: skip
        if doc["kind"] == "Deployment":
            adapt_pod(doc["spec"]["template"]["spec"])
        return [*extra, doc]

    configmap = _docs("configmap.yaml")[0]
    configmap = {**configmap, "metadata": {"name": named("usdcop-config")}}
    configmap["data"] = {
        **configmap["data"],
        "FEAST_REDIS_HOST": f"{named('usdcop-redis')}-pod-0",
        "POSTGRES_HOST": f"{named('usdcop-postgres')}-pod-0",
        "USDCOP_HISTORY_DAYS": "60",
    }
    stages = {
        "stores": [
            d for f in ("redis.yaml", "postgres.yaml") for doc in _docs(f) for d in adapt(doc)
        ],
        "pipeline": [d for doc in _docs("pipeline.yaml") for d in adapt(doc)],
        "server": [d for doc in _docs("server.yaml") for d in adapt(doc)],
    }
    return {"configmap": [configmap], **stages}


def _exec_until(container: str, argv: list[str], timeout_s: float) -> str:
    began = time.monotonic()
    while True:
        done = _podman.podman("exec", container, *argv, check=False, timeout_s=60)
        if done.returncode == 0:
            return done.stdout
        if time.monotonic() - began > timeout_s:
            raise AssertionError(
                f"`{' '.join(argv)}` in {container} still failing after {timeout_s:g} s: "
                f"{(done.stdout + done.stderr).strip()[-500:]}\nits log:\n{_podman.logs(container)}"
            )
        time.sleep(1)


@pytest.fixture(scope="module")
def played(run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    run = f"{run_id}k"
    folder = tmp_path_factory.mktemp("kube")
    secret = f"{run}-usdcop-secrets"
    values = {
        "REDIS_PASSWORD": secrets.token_urlsafe(18),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(18),
        "USDCOP_PUSH_TOKEN": secrets.token_urlsafe(18),
    }
    secret_file = folder / "secret.json"
    secret_file.write_text(
        json.dumps({k: base64.b64encode(v.encode()).decode() for k, v in values.items()})
    )
    rendered = render(run, secret)
    paths = {}
    for stage, docs in rendered.items():
        paths[stage] = folder / f"{stage}.yaml"
        paths[stage].write_text(yaml.safe_dump_all(docs, sort_keys=False))
    network = f"{run}-net"
    state = Played(
        run, (paths["stores"], paths["pipeline"], paths["server"]), paths["configmap"], network,
        secret, frozenset(_podman.volumes()),
    )  # fmt: skip
    try:
        _podman.podman("network", "create", network)
        _podman.podman("secret", "create", secret, str(secret_file))
        play = ["kube", "play", "--network", network, "--configmap", str(paths["configmap"])]
        _podman.podman(*play, str(paths["stores"]), timeout_s=180)
        _exec_until(state.container("usdcop-redis", "redis"), ["redis-cli", "ping"], 60)
        _exec_until(state.container("usdcop-postgres", "postgres"), ["pg_isready"], 90)
        _podman.podman(*play, str(paths["pipeline"]), timeout_s=180)
        _exec_until(
            state.container("usdcop-pipeline", "pipeline"),
            ["test", "-s", "/app/metrics/usdcop_pipeline.prom"],
            300,
        )
        state.__dict__["pipeline_ready_at"] = time.monotonic()
        _podman.podman(*play, str(paths["server"]), timeout_s=180)
        for index in (0, 1):
            _exec_until(
                state.container("usdcop-server", "server", index), ["python", "-c", HEALTH], 120
            )
        yield state
    finally:
        for path in reversed(state.files):
            _podman.podman("kube", "down", str(path), check=False, timeout_s=180)
        for volume in _podman.volumes() - state.volumes_before:
            _podman.podman("volume", "rm", "-f", volume, check=False)
        _podman.podman("network", "rm", "-f", network, check=False)
        _podman.podman("secret", "rm", secret, check=False)
        _podman.teardown(run)


def test_both_server_replicas_serve_15_values_from_the_online_store(played: Played) -> None:
    for index in (0, 1):
        container = played.container("usdcop-server", "server", index)
        done = _podman.podman(
            "exec", container, "python", "-m", "client", "USDCOP",
            "--target", "127.0.0.1:50051", check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert list(online_rows(done.stdout)) == list(contract.FEATURE_NAMES), done.stdout


def test_the_configmap_and_secret_reached_the_pods(played: Played) -> None:
    server = played.container("usdcop-server", "server")
    env = dict(
        line.split("=", 1)
        for line in _podman.podman("exec", server, "env").stdout.splitlines()
        if "=" in line
    )
    assert env["USDCOP_DRAIN_PERIOD_S"] == "5"
    assert env["USDCOP_WORKERS"] == "1"
    assert env["FEAST_REDIS_PASSWORD"] and env["POSTGRES_PASSWORD"]
    # The password is enforced: Redis refuses a client without it.
    redis = played.container("usdcop-redis", "redis")
    anonymous = _podman.podman(
        "exec", "-e", "REDISCLI_AUTH=", redis, "redis-cli", "ping", check=False
    )
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr
    # The pipeline's node-exporter sidecar serves its textfile.
    exporter = played.container("usdcop-pipeline", "node-exporter")
    metrics = _exec_until(exporter, ["wget", "-q", "-O", "-", "http://127.0.0.1:9100/metrics"], 30)
    assert "usdcop_materialization_last_success_timestamp_seconds" in metrics


def test_a_server_pod_stays_within_its_memory_limit(
    played: Played, figures: dict[str, str]
) -> None:
    rss = []
    for index in (0, 1):
        container = played.container("usdcop-server", "server", index)
        # After the first test's calls: the fallback's window and the cache are loaded.
        status = _podman.podman("exec", container, "cat", "/proc/1/status").stdout
        line = next(row for row in status.splitlines() if row.startswith("VmRSS:"))
        rss.append(int(line.split()[1]))
    limit_kib = server_memory_limit_mib() * 1024
    figures["kube play: server RSS per replica (1 process each)"] = ", ".join(
        f"{kib / 1024:.0f} MB" for kib in rss
    )
    assert max(rss) < limit_kib, (rss, limit_kib)


def test_kube_down_leaves_no_pod_volume_or_network(played: Played) -> None:
    for path in reversed(played.files):
        _podman.podman("kube", "down", str(path), timeout_s=180)
    for volume in _podman.volumes() - played.volumes_before:
        _podman.podman("volume", "rm", volume)
    _podman.podman("network", "rm", played.network)
    _podman.podman("secret", "rm", played.secret)
    left = _podman.leftovers(played.run, set(played.volumes_before))
    assert left.empty, left
