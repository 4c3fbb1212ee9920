"""deploy/: the Kubernetes manifests against the Kubernetes schemas (kubernetes-validate,
strict: an unknown or misplaced field fails), and the rules the compose file and the manifests
promise: health checks and ordered start-up, the guide's container names, official images by
default, the server's drain + grace inside its termination period. No sockets, no podman
(make test-deploy runs them for real)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
MANIFESTS = sorted(p for p in (DEPLOY / "k8s").glob("*.yaml") if p.name != "kustomization.yaml")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_against_the_kubernetes_schemas(path: Path) -> None:
    for doc in _docs(path):
        kubernetes_validate.validate(doc, "1.33", strict=True)


def test_a_misspelt_field_is_refused() -> None:
    deployment = next(d for d in _docs(DEPLOY / "k8s" / "server.yaml") if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 12
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.33", strict=True)


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    listed = set(yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in MANIFESTS} - {"secret.example.yaml"}


def test_server_deployment_probes_grpc_health_and_drains_within_its_grace() -> None:
    config = _docs(DEPLOY / "k8s" / "configmap.yaml")[0]["data"]
    deployment = next(d for d in _docs(DEPLOY / "k8s" / "server.yaml") if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["grpc"] == {"port": 50051}
    drain = float(config["USDCOP_DRAIN_PERIOD_S"])
    grace = float(config["USDCOP_GRACE_PERIOD_S"])
    assert drain + grace < pod["terminationGracePeriodSeconds"] <= drain + grace + 5
    assert deployment["spec"]["replicas"] >= 2
    assert server["resources"]["requests"]["memory"] and server["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    budget = next(
        d for d in _docs(DEPLOY / "k8s" / "server.yaml") if d["kind"] == "PodDisruptionBudget"
    )
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]


COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_every_compose_service_has_a_health_check_and_waits_for_healthy_dependencies() -> None:
    for name, service in COMPOSE["services"].items():
        assert service.get("healthcheck", {}).get("test"), name
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
            assert dependency in COMPOSE["services"]


def test_compose_names_containers_as_the_guide_and_defaults_to_official_images() -> None:
    services = COMPOSE["services"]
    for name, service in services.items():
        assert service["container_name"] == f"${{USDCOP_CONTAINER_PREFIX:-usdcop}}-{name}"
    official = {
        "redis": "${REDIS_IMAGE:-docker.io/library/redis:",
        "postgres": "${POSTGRES_IMAGE:-docker.io/library/postgres:",
        "prometheus": "${PROMETHEUS_IMAGE:-docker.io/prom/prometheus:",
        "node-exporter": "${NODE_EXPORTER_IMAGE:-quay.io/prometheus/node-exporter:",
        "grafana": "${GRAFANA_IMAGE:-docker.io/grafana/grafana:",
    }
    for name, prefix in official.items():
        assert services[name]["image"].startswith(prefix), services[name]["image"]
    assert services["grafana"]["profiles"] == ["grafana"]
    for service in services.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port  # published on loopback only
