"""deploy/prometheus-operator on a real API server with the Prometheus Operator's CRDs, and a real
Prometheus discovering the cluster's pods through the scrape configuration those monitors stand
for: model pods, the gateway and the operator become targets with the labels the dashboards use.

The Prometheus Operator itself is not built here (its release module is not served by the Go
module proxy); ``scrape_config`` writes the configuration it generates from a monitor (keep by
the selector's labels and the endpoint's port, the default target labels, then the monitor's
relabelings), which is a documented, stable translation."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from modelplane.backends.kubernetes.monitoring import monitoring_files
from tests.kubernetes.conftest import OPERATOR_NAMESPACE
from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.kubernetes.operating import RunningOperator, apply, ready
from tests.processes import free_port, stop_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MONITORS = ROOT / "deploy" / "prometheus-operator"


def test_deploy_prometheus_operator_is_rendered_from_the_monitors() -> None:
    for name, text in monitoring_files(OPERATOR_NAMESPACE).items():
        committed = (MONITORS / name).read_text()
        assert committed == text, f"deploy/prometheus-operator/{name} is stale: run render-deploy"


@pytest.fixture(scope="module")
def monitor_crds(control_plane: ControlPlane, k8s_bin_dir: Path) -> None:
    crds = sorted(k8s_bin_dir.parents[1].glob("monitoring-crds-*/*.yaml"))
    assert len(crds) == 3, "Prometheus Operator CRDs missing: run scripts/k8s-testenv"
    for crd in crds:
        control_plane.kubectl("apply", "--server-side", "-f", str(crd), check=True)
    wait_until(
        lambda: control_plane.kubectl("get", "podmonitors", "-A").returncode == 0,
        "PodMonitor served",
    )


def test_the_monitors_are_valid_against_the_operators_crds(
    control_plane: ControlPlane, monitor_crds: None, installed: str
) -> None:
    applied = control_plane.kubectl(
        "apply", "--server-side", "--validate=strict", "-k", str(MONITORS)
    )
    assert applied.returncode == 0, applied.stderr
    assert {m["kind"] for m in control_plane.get_json(
        "podmonitors,servicemonitors,prometheusrules", "-A")["items"]} == {
        "PodMonitor", "ServiceMonitor", "PrometheusRule"}  # fmt: skip

    # The CRDs' schemas are real: a misspelt field is refused, naming it.
    broken = (MONITORS / "monitors.yaml").read_text().replace("podMetricsEndpoints", "endpointz")
    refused = control_plane.kubectl(
        "apply", "--server-side", "--dry-run=server", "--validate=strict", "-f", "-",
        input=broken,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "endpointz" in refused.stderr


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _relabel(rule: dict[str, Any]) -> dict[str, Any]:
    found = {_snake(k): v for k, v in rule.items()}
    if "action" in found:
        found["action"] = found["action"].lower()
    return found


def _meta(kind: str, label: str) -> str:
    return f"__meta_kubernetes_{kind}_{re.sub(r'[^a-zA-Z0-9_]', '_', label)}"


def scrape_config(monitor: dict[str, Any], kubeconfig: Path) -> dict[str, Any]:
    """The scrape configuration the Prometheus Operator generates for one monitor's first
    endpoint."""
    spec, meta = monitor["spec"], monitor["metadata"]
    pods = monitor["kind"] == "PodMonitor"
    owner = "pod" if pods else "service"
    endpoint = spec["podMetricsEndpoints" if pods else "endpoints"][0]
    discovery: dict[str, Any] = {"role": "pod" if pods else "endpoints",
                                 "kubeconfig_file": str(kubeconfig)}  # fmt: skip
    if not spec["namespaceSelector"].get("any"):
        discovery["namespaces"] = {"names": spec["namespaceSelector"]["matchNames"]}
    relabel: list[dict[str, Any]] = [
        {"action": "keep", "regex": f"({value});true",
         "source_labels": [_meta(owner, f"label_{key}"), _meta(owner, f"labelpresent_{key}")]}
        for key, value in spec["selector"]["matchLabels"].items()
    ]  # fmt: skip
    port_label = "__meta_kubernetes_pod_container_port_name" if pods else (
        "__meta_kubernetes_endpoint_port_name")  # fmt: skip
    relabel += [
        {"action": "keep", "source_labels": [port_label], "regex": endpoint["port"]},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"},
        {"target_label": "endpoint", "replacement": endpoint["port"]},
        *(_relabel(rule) for rule in endpoint.get("relabelings", [])),
    ]
    return {
        "job_name": f"{monitor['kind']}/{meta['namespace']}/{meta['name']}/0",
        "metrics_path": endpoint["path"],
        "scrape_interval": "1s",
        "kubernetes_sd_configs": [discovery],
        "relabel_configs": relabel,
    }


@pytest.fixture(scope="module")
def discovering_prometheus(
    control_plane: ControlPlane, k8s_bin_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Prometheus with its Kubernetes discovery (Debian's is built without it)."""
    found = sorted(k8s_bin_dir.parents[1].glob("prometheus-*/prometheus"))
    assert found, "Prometheus with Kubernetes discovery missing: run scripts/k8s-testenv"
    binary = str(found[-1])
    work = tmp_path_factory.mktemp("discovering-prometheus")
    monitors = list(yaml.safe_load_all((MONITORS / "monitors.yaml").read_text()))
    config = {"scrape_configs": [scrape_config(m, control_plane.kubeconfig) for m in monitors]}
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = work / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, f"--config.file={work / 'prometheus.yml'}",
             f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: process.poll() is None and _get(f"{url}/-/ready"), "Prometheus ready")
        yield url
    finally:
        stop_process(process)


def _get(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def targets(prometheus: str) -> list[dict[str, str]]:
    reply = httpx.get(f"{prometheus}/api/v1/targets", params={"state": "active"}, timeout=5)
    reply.raise_for_status()
    return [{**t["labels"], "url": t["scrapeUrl"]} for t in reply.json()["data"]["activeTargets"]]


def test_prometheus_finds_model_pods_the_gateway_and_the_operator(
    control_plane: ControlPlane,
    operator_with_defaults: RunningOperator,
    discovering_prometheus: str,
) -> None:
    apply(control_plane, "watched", "  scaling: {minReplicas: 2, maxReplicas: 2}\n")
    wait_until(lambda: ready(control_plane, "watched"), "watched Ready", 60)
    pods = control_plane.get_json("pods", "-l", "modelplane.io/model=watched")["items"]
    expected = {
        (p["metadata"]["name"], f"http://{p['status']['podIP']}:8080/metrics") for p in pods
    }
    assert len(expected) == 2

    def runtime_targets() -> list[dict[str, str]] | None:
        found = [
            t for t in targets(discovering_prometheus)
            if t["job"] == "modelplane-runtime" and t.get("modelplane_model") == "watched"
        ]  # fmt: skip
        return found if {(t["replica"], t["url"]) for t in found} == expected else None

    found = wait_until(runtime_targets, "a target per model pod", 30)
    revision = pods[0]["metadata"]["labels"]["modelplane.io/revision"]
    assert {(t["namespace"], t["revision"]) for t in found} == {("default", revision)}

    def component(job: str, name: str) -> list[dict[str, str]] | None:
        listed = control_plane.get_json(
            "pods", "-n", OPERATOR_NAMESPACE, "-l", f"app.kubernetes.io/name={name}"
        )["items"]
        wanted = {f"http://{p['status']['podIP']}:8080/metrics" for p in listed
                  if p["status"].get("podIP")}  # fmt: skip
        found = [t for t in targets(discovering_prometheus) if t["job"] == job]
        return found if wanted and {t["url"] for t in found} == wanted else None

    gateway = wait_until(lambda: component("modelplane-gateway", "modelplane-gateway"),
                         "the gateway's pods as targets", 30)  # fmt: skip
    assert {t["namespace"] for t in gateway} == {OPERATOR_NAMESPACE}
    wait_until(lambda: component("modelplane-operator", "modelplane-operator"),
               "the operator's pod as a target", 30)  # fmt: skip
    # Only model pods are runtime targets: no gateway or operator pod among them.
    runtime = [t for t in targets(discovering_prometheus) if t["job"] == "modelplane-runtime"]
    assert all(t["namespace"] != OPERATOR_NAMESPACE for t in runtime)
