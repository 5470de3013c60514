"""The gateway on a cluster, end to end: the operator makes the Deployments, kwok runs the pods,
real ``modelplane serve`` processes answer at the pod IPs (``podnet``), and ``modelplane
gateway`` routes by the Models' status and the EndpointSlices, holds requests during a cold
start, and tells the operator the load it scales on."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from modelplane.artifacts import Limits, digest_of
from tests.artifacts.hubcache import minilm_directory
from tests.artifacts.mlflow_server import MlflowServer, mlflow_venv
from tests.artifacts.registry import Oras, Registry
from tests.artifacts.s3server import BUCKET, S3Server
from tests.kubernetes import gateways
from tests.kubernetes.conftest import OPERATOR_NAMESPACE, condition
from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.kubernetes.gateways import account_kubeconfig
from tests.kubernetes.operating import RunningOperator
from tests.kubernetes.podnet import PodNetwork, PodRunner
from tests.processes import free_port, modelplane
from tests.prometheus import PrometheusServer
from tests.traffic import BODY, flaky_manifest, gated_manifest, steady_load, write_iris_dataset

pytestmark = pytest.mark.slow

NAMESPACE = "serving"
ROOT = Path(__file__).resolve().parents[2]


def iris(name: str, extra: str = "") -> str:
    """A Model serving the iris example's real ONNX artifact."""
    example = yaml.safe_load((ROOT / "examples" / "iris" / "iris.yaml").read_text())
    return model_document(name, example["spec"]["source"], extra=extra)


def model_document(
    name: str,
    source: dict[str, Any],
    fmt: str = "onnx",
    task: str = "classification",
    extra: str = "",
) -> str:
    """A Model of NAMESPACE named ``name`` serving ``source``; ``extra`` adds lines to its spec."""
    return (
        f"apiVersion: modelplane.io/v1alpha1\nkind: Model\n"
        f"metadata: {{name: {name}, namespace: {NAMESPACE}}}\n"
        f"spec:\n  source: {json.dumps(source)}\n  format: {fmt}\n  task: {task}\n{extra}"
    )


@dataclass
class ClusterGateway:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def infer(self, name: str, timeout: float = 30) -> httpx.Response:
        return httpx.post(f"{self.url}/v2/models/{NAMESPACE}/{name}/infer", json=BODY,
                          timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def pods(
    control_plane: ControlPlane, kwok_node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PodRunner]:
    control_plane.kubectl("create", "namespace", NAMESPACE, check=False)
    network = PodNetwork()
    runner = PodRunner(control_plane, network, NAMESPACE, tmp_path_factory.mktemp("pods"))
    yield runner
    runner.stop()
    network.stop()


@pytest.fixture(scope="module")
def gateway_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def prometheus(
    gateway_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping the cluster gateway, as canary analysis reads on a cluster."""
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{gateway_port}"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane, installed: str, pods: PodRunner, prometheus: PrometheusServer
) -> Iterator[RunningOperator]:
    kubeconfig = account_kubeconfig(control_plane, "modelplane-operator")
    log = control_plane.work_dir / "cluster-gateway-operator.log"
    options = ("--namespace", NAMESPACE, "--prometheus", prometheus.url)
    running = RunningOperator(kubeconfig, log, options=options)
    yield running
    running.stop()


def start_gateway(plane: ControlPlane, port: int, log: Path, *options: str) -> ClusterGateway:
    """``modelplane gateway`` for NAMESPACE with the gateway ServiceAccount's token, ready."""
    found = gateways.start_gateway(plane, NAMESPACE, port, log, *options)
    return ClusterGateway(found.url, found.process, found.log)


@pytest.fixture(scope="module")
def gateway(
    control_plane: ControlPlane, operator: RunningOperator, gateway_port: int
) -> Iterator[ClusterGateway]:
    found = start_gateway(
        control_plane, gateway_port, control_plane.work_dir / "cluster-gateway.log",
        "--report-to", f"http://127.0.0.1:{operator.metrics_port}/v1/load",
        "--name", "gateway-0", "--hold-timeout", "60",
    )  # fmt: skip
    yield found
    found.process.terminate()
    found.process.wait(timeout=20)


def _model(plane: ControlPlane, name: str) -> dict[str, object]:
    found: dict[str, object] = plane.get_json("mdl", "-n", NAMESPACE, name)
    return found


def _apply(plane: ControlPlane, document: str) -> None:
    plane.kubectl("apply", "-f", "-", input=document, check=True)


def _status(plane: ControlPlane, name: str) -> dict[str, Any]:
    status = _model(plane, name).get("status") or {}
    assert isinstance(status, dict)
    return status


def test_requests_reach_the_pods_through_the_cluster_gateway(
    control_plane: ControlPlane, pods: PodRunner, gateway: ClusterGateway
) -> None:
    _apply(control_plane, iris("iris", "  scaling: {minReplicas: 2, maxReplicas: 2}\n"))
    wait_until(lambda: len(pods.serving()) == 2, "two iris pods serving at their pod IPs", 60)
    # The EndpointSlice controller copies the Service's labels: that is how slices are found.
    slices = control_plane.get_json("endpointslices", "-n", NAMESPACE, "-l",
                                    "modelplane.io/model=iris")  # fmt: skip
    assert [s["metadata"]["labels"]["modelplane.io/revision"] for s in slices["items"]] == [
        "iris-r1"
    ]

    def ready_endpoints() -> int:
        found = control_plane.get_json("endpointslices", "-n", NAMESPACE, "-l",
                                       "modelplane.io/model=iris")  # fmt: skip
        return sum(
            1
            for piece in found["items"]
            for endpoint in piece.get("endpoints") or []
            if (endpoint.get("conditions") or {}).get("ready")
        )

    # A pod's process runs before the pod is Ready; the gateway routes on the slices' ready ones.
    wait_until(lambda: ready_endpoints() == 2, "both pods ready in the EndpointSlice", 60)
    for sent in range(1, 201):
        reply = gateway.infer("iris")
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-modelplane-revision"] == "iris-r1"
        assert reply.json()["outputs"][0]["data"] == [0]  # setosa
        # Both pods take a share: the gateway balances over every ready endpoint.
        if sent >= 40 and all(pods.answered(pod) > 0 for pod in pods.serving()):
            break
    assert all(pods.answered(pod) > 0 for pod in pods.serving())


def test_a_canary_takes_its_share_through_the_gateway_then_is_promoted(
    control_plane: ControlPlane, pods: PodRunner, gateway: ClusterGateway
) -> None:
    # One long 50% step whose analysis never has enough requests to judge: Prometheus scrapes
    # the gateway here, and a judged canary (a slow first batch, say) could be rolled back
    # before the promote. The step waits for promote (or abort).
    steps = (
        "  rollout: {steps: [{weight: 50, pauseSeconds: 600}], analysis: {minRequests: 1000000}}\n"
    )
    scaling = "  scaling: {minReplicas: 2, maxReplicas: 2}\n"
    _apply(control_plane, iris("iris", steps + scaling + "  batching: {maxBatchSize: 8}\n"))

    def split() -> bool:
        status = _model(control_plane, "iris").get("status") or {}
        assert isinstance(status, dict)
        traffic = {r["name"]: r.get("traffic", 0) for r in status.get("revisions", [])}
        return traffic == {"iris-r1": 50, "iris-r2": 50}

    wait_until(split, "iris at 50/50 between r1 and r2 on status", 60)
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + 60
    while len(seen) < 2 or sum(seen.values()) < 100:
        assert time.monotonic() < deadline, f"revisions answering: {seen}"
        reply = gateway.infer("iris")
        assert reply.status_code == 200, reply.text
        seen[reply.headers["x-modelplane-revision"]] += 1
    assert set(seen) == {"iris-r1", "iris-r2"}
    assert 25 <= seen["iris-r2"] <= 75, seen  # 50% of 100, well inside chance

    control_plane.kubectl(
        "annotate", "--overwrite", "mdl", "-n", NAMESPACE, "iris",
        "modelplane.io/rollout-command=promote:1", check=True,
    )  # fmt: skip

    def ended() -> dict[str, Any] | None:
        rollout = _status(control_plane, "iris").get("rollout") or {}
        return rollout if rollout.get("phase") in ("Promoted", "RolledBack") else None

    assert wait_until(ended, "the rollout to end", 30)["phase"] == "Promoted"
    wait_until(
        lambda: all(p.startswith("iris-r2") for p in pods.serving()), "iris-r1 pods gone", 60
    )
    for _ in range(20):
        reply = gateway.infer("iris")
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-modelplane-revision"] == "iris-r2"


def test_scale_to_zero_and_back_holds_the_request(
    control_plane: ControlPlane, pods: PodRunner, gateway: ClusterGateway
) -> None:
    scaling = "  scaling: {minReplicas: 0, maxReplicas: 2, scaleToZeroAfterSeconds: 3}\n"
    _apply(control_plane, iris("sleepy", scaling))

    def at_zero() -> bool:
        found = _model(control_plane, "sleepy")
        status = found.get("status") or {}
        assert isinstance(status, dict)
        return condition(found, "Ready") == "True" and any(
            c.get("reason") == "ScaledToZero" for c in status.get("conditions", [])
        )

    wait_until(at_zero, "sleepy scaled to zero after 3 s idle", 90)
    wait_until(lambda: not any(p.startswith("sleepy") for p in pods.serving()), "no sleepy pod")
    deployment = control_plane.get_json("deploy", "-n", NAMESPACE, "sleepy-r1")
    assert deployment["spec"]["replicas"] == 0

    started = time.monotonic()
    reply = gateway.infer("sleepy", timeout=90)
    took = time.monotonic() - started
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == [0]
    assert any(p.startswith("sleepy") for p in pods.serving())
    print(f"cold start through the cluster gateway: {took:.1f}s")


def flaky(name: str, fail: bool) -> str:
    """A Model whose every request fails when ``fail``, with a short canary on Prometheus."""
    rollout = (
        "  rollout:\n"
        "    steps: [{weight: 20, pauseSeconds: 5}, {weight: 60, pauseSeconds: 5}]\n"
        "    analysis: {minRequests: 20, maxLatencyP99Ms: 2000}\n"
    )
    return flaky_manifest(name, fail, rollout, NAMESPACE)


def test_a_failing_canary_is_rolled_back_on_prometheus_numbers_with_no_failed_request(
    control_plane: ControlPlane, pods: PodRunner, gateway: ClusterGateway
) -> None:
    _apply(control_plane, flaky("flaky", fail=False))
    wait_until(lambda: condition(_model(control_plane, "flaky"), "Ready") == "True", "flaky up")
    with steady_load(f"{gateway.url}/v2/models/{NAMESPACE}/flaky/infer") as outcomes:
        wait_until(lambda: sum(outcomes.values()) > 0, "requests flowing")
        _apply(control_plane, flaky("flaky", fail=True))

        def rolled_back() -> bool:
            rollout = _status(control_plane, "flaky").get("rollout") or {}
            return rollout.get("phase") == "RolledBack"

        wait_until(rolled_back, "the failing canary rolled back", 90)
    # The gateway answered every failed canary attempt from the stable revision.
    assert [k for k in outcomes if not k.startswith("200")] == [], outcomes
    assert outcomes["200 flaky-r1"] > 0
    analysis = _status(control_plane, "flaky")["rollout"]["lastAnalysis"]
    failed = {m["name"]: m for m in analysis["metrics"] if not m["passed"]}
    assert failed["errorRate"]["value"] > 0.9, analysis  # counted by Prometheus from the gateway
    traffic = {r["name"]: r.get("traffic", 0) for r in _status(control_plane, "flaky")["revisions"]}
    assert traffic.get("flaky-r1") == 100


def test_a_canary_failing_its_evaluation_gate_never_takes_traffic_on_the_cluster(
    control_plane: ControlPlane, pods: PodRunner, gateway: ClusterGateway, tmp_path: Path
) -> None:
    dataset = write_iris_dataset(tmp_path / "iris.jsonl")
    _apply(control_plane, gated_manifest(0, dataset=dataset, namespace=NAMESPACE))
    wait_until(lambda: condition(_model(control_plane, "gated"), "Ready") == "True", "gated up")
    with steady_load(f"{gateway.url}/v2/models/{NAMESPACE}/gated/infer") as outcomes:
        _apply(control_plane, gated_manifest(1, dataset=dataset, namespace=NAMESPACE))

        def judged() -> bool:
            rollout = _status(control_plane, "gated").get("rollout") or {}
            return rollout.get("reason") == "EvaluationFailed"

        wait_until(judged, "the gate's verdict", 90)
    # Replayed by the operator against the canary's pod; no client request reached it.
    verdict = _status(control_plane, "gated")["rollout"]["evaluation"]
    assert (verdict["passed"], verdict["examples"]) == (False, 3), verdict
    assert verdict["value"] == pytest.approx(1 / 3), verdict
    assert {k.split()[1] for k in outcomes} == {"gated-r1"}, outcomes


def test_usage_on_the_cluster_is_counted_by_the_operator_and_gateway_and_read_from_prometheus(
    control_plane: ControlPlane,
    pods: PodRunner,
    operator: RunningOperator,
    gateway: ClusterGateway,
    tmp_path: Path,
) -> None:
    """The operator counts each pod's time with what it requested, the gateway each answer;
    a Prometheus scraping both gives `modelplane usage --prometheus` the team's report."""
    _apply(control_plane, iris("metered", "  resources: {cpu: 500m, memory: 256Mi}\n"))
    wait_until(lambda: condition(_model(control_plane, "metered"), "Ready") == "True", "up", 60)
    scraping = [gateway.url.removeprefix("http://"), f"127.0.0.1:{operator.metrics_port}"]
    prometheus = PrometheusServer(tmp_path, scraping)
    try:
        # A series' first scrape is where Prometheus starts counting it: one request first
        # (once the gateway's watch has brought it the Model's route, a moment after Ready).
        wait_until(lambda: gateway.infer("metered").status_code == 200, "metered routed", 30)
        # The operator's series of the Model are there from the start (at 0): wait for the
        # gateway's, which counts the answer.
        seen = 'modelplane_usage_requests_total{model="metered", class="ok"} > 0'
        wait_until(lambda: len(prometheus.query(seen)) > 0, "the first answer scraped", 30)
        for _ in range(20):
            assert gateway.infer("metered").status_code == 200
        for _ in range(5):  # refused by the replica: a client error, still the Model's usage
            bad = httpx.post(f"{gateway.url}/v2/models/{NAMESPACE}/metered/infer",
                             json={"inputs": []}, timeout=30)  # fmt: skip
            assert 400 <= bad.status_code < 500, bad.text
        time.sleep(20)  # scraped many times over: extrapolation at the edges weighs little
        shown = subprocess.run(
            modelplane("usage", "-n", NAMESPACE, "--prometheus", prometheus.url, "-o", "json"),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        prometheus.stop()
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    (team,) = report["teams"]
    used = {m["name"]: m["summary"] for m in team["models"]}["metered"]
    assert 20 <= used["requests"] - used["clientErrors"] <= 22, used  # Prometheus' estimate
    assert 5 <= used["clientErrors"] <= 6, used
    assert used["serverErrors"] == 0
    # The pod's time since the first scrape, weighted by what it requested.
    assert 20 < used["replicaSeconds"] < 60, used
    assert used["cpuCoreSeconds"] == pytest.approx(used["replicaSeconds"] * 0.5, rel=0.02)
    assert used["memoryGiBSeconds"] == pytest.approx(used["replicaSeconds"] * 0.25, rel=0.02)
    assert (used["acceleratorSeconds"], used["promptTokens"]) == (0, 0)


def test_the_cluster_gateway_checks_api_keys_from_a_file(
    control_plane: ControlPlane, gateway: ClusterGateway, tmp_path: Path
) -> None:
    """Keys made with `auth keys create --to-file` (a Secret, on a cluster), read again when the
    file changes: a revoked key is refused within seconds, without a restart."""
    keys = tmp_path / "keys.json"

    def create(name: str, grant: str) -> str:
        made = subprocess.run(
            modelplane("auth", "keys", "create", name, f"--grant={grant}", "--to-file", str(keys)),
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return made.stdout.strip()

    serving, other = create("serving-team", f"{NAMESPACE}=viewer"), create("other", "x=admin")
    assert "mpk_" not in keys.read_text()  # only hashes
    secured = start_gateway(control_plane, free_port(), tmp_path / "secured.log", "--report-to",
                            "", "--api-keys", str(keys))  # fmt: skip
    try:
        url = f"{secured.url}/v2/models/{NAMESPACE}/anything/infer"

        def status(key: str | None) -> int:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            return httpx.post(url, json=BODY, headers=headers, timeout=30).status_code

        assert status(None) == 401
        assert status(other) == 403
        assert status(serving) not in (401, 403)  # past the checks (no such model: 404/503)
        key_id = serving.split("_")[1]
        subprocess.run(modelplane("auth", "keys", "revoke", key_id, "--file", str(keys)),
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        wait_until(lambda: status(serving) == 401, "the revoked key refused", 15)
    finally:
        secured.process.terminate()
        secured.process.wait(timeout=20)


def test_the_cluster_gateway_enforces_namespace_quotas_shared_by_its_peers(
    control_plane: ControlPlane, operator: RunningOperator, pods: PodRunner, tmp_path: Path
) -> None:
    """A tenant's quota is `quota.modelplane.io/*` annotations on its Namespace, read by every
    gateway from the API server; gateways behind one Service each hold their share of it (the
    Service's ready endpoints say how many share), and lifting the annotation lifts the limit."""
    _apply(control_plane, iris("limited", "  scaling: {minReplicas: 1, maxReplicas: 1}\n"))
    wait_until(lambda: any(p.startswith("limited") for p in pods.serving()), "a limited pod", 60)
    peers = f"{OPERATOR_NAMESPACE}/modelplane-gateway"
    limited = start_gateway(control_plane, free_port(), tmp_path / "quotas.log",
                            "--report-to", "", "--peers", peers)  # fmt: skip
    annotation = "quota.modelplane.io/requests-per-second"
    annotate = ("annotate", "--overwrite", "namespace", NAMESPACE)
    peer_slice = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "modelplane-gateway-test", "namespace": OPERATOR_NAMESPACE,
                     "labels": {"kubernetes.io/service-name": "modelplane-gateway"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}
                      for ip in ("10.0.0.1", "10.0.0.2")],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }  # fmt: skip

    def refusal() -> httpx.Response | None:
        """The first 429 of a burst of 20, or None when all 20 were served."""
        for _ in range(20):
            reply = limited.infer("limited")
            if reply.status_code == 429:
                return reply
            assert reply.status_code == 200, reply.text
        return None

    def refused_saying(words: str) -> bool:
        reply = refusal()
        return reply is not None and words in reply.json()["error"]

    try:
        assert refusal() is None
        control_plane.kubectl(*annotate, f"{annotation}=4", check=True)
        wait_until(lambda: refused_saying("over its quota of 4 requests per second"),
                   "the namespace's quota enforced", 20)  # fmt: skip
        reply = refusal()
        assert reply is not None
        assert int(reply.headers["retry-after"]) >= 1
        # Two more gateways behind the Service (beside the installed ones kwok runs): this one
        # holds its share of the quota.
        peers_now = len(_ready_addresses(control_plane))
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(peer_slice), check=True)
        shared = f"(shared by {peers_now + 2} gateways)"
        wait_until(lambda: refused_saying(shared), f"the quota {shared}", 20)
        control_plane.kubectl(*annotate, f"{annotation}-", check=True)
        wait_until(lambda: refusal() is None, "the quota lifted", 20)
    finally:
        control_plane.kubectl(*annotate, f"{annotation}-", check=False)
        control_plane.kubectl("delete", "endpointslice", "-n", OPERATOR_NAMESPACE,
                              "modelplane-gateway-test", check=False)  # fmt: skip
        limited.process.terminate()
        limited.process.wait(timeout=20)


def _ready_addresses(plane: ControlPlane) -> set[str]:
    slices = plane.get_json("endpointslices", "-n", OPERATOR_NAMESPACE, "-l",
                            "kubernetes.io/service-name=modelplane-gateway")  # fmt: skip
    return {address for found in slices["items"] for endpoint in found.get("endpoints") or []
            if (endpoint.get("conditions") or {}).get("ready") is not False
            for address in endpoint["addresses"]}  # fmt: skip


def test_a_private_model_in_s3_serves_through_the_fetch_step_with_its_secret(
    control_plane: ControlPlane,
    pods: PodRunner,
    gateway: ClusterGateway,
    s3: S3Server,
    iris_dir: Path,
) -> None:
    """The pod's init container fetches with the Secret (a kubelet stand-in mounts it), the
    model container serves what it left, read-only, and holds no credential."""
    data = (iris_dir / "model.onnx").read_bytes()
    s3.client().put_object(Bucket=BUCKET, Key="cluster/iris.onnx", Body=data)
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "s3-reader", "namespace": NAMESPACE},
              "stringData": {"AWS_ACCESS_KEY_ID": s3.reader.access_key,
                             "AWS_SECRET_ACCESS_KEY": s3.reader.secret_key}}  # fmt: skip
    control_plane.apply(secret)
    source = {
        "uri": f"s3://{BUCKET}/cluster/iris.onnx",
        "endpoint": s3.endpoint,
        "sha256": hashlib.sha256(data).hexdigest(),
        "credentials": {"secret": "s3-reader"},
    }
    _apply(control_plane, model_document("private", source))

    def serving() -> bool:
        return any(p.startswith("private-") for p in pods.serving())

    wait_until(serving, "the private model's pod serving", 90)
    reply = gateway.infer("private")
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == [0]  # setosa
    deployment = control_plane.get_json("deployment", "-n", NAMESPACE, "private-r1")
    model = deployment["spec"]["template"]["spec"]["containers"][0]
    assert [m["name"] for m in model["volumeMounts"]] == ["cache", "tmp"]
    shown = [json.dumps(_model(control_plane, "private")), json.dumps(deployment)]
    assert not [text for text in shown if s3.reader.secret_key in text]


def test_an_oci_tag_is_pinned_by_the_operator_and_served_by_the_pods(
    control_plane: ControlPlane,
    pods: PodRunner,
    gateway: ClusterGateway,
    registry: Registry,
    oras: Oras,
    iris_dir: Path,
) -> None:
    """The operator resolves the tag when it makes the revision; the pods fetch that digest."""
    reference = f"{registry.host}/cluster/iris:stable"
    oras.push(reference, "model.onnx", cwd=iris_dir)
    pinned = oras.resolve(reference)
    source = {"uri": f"oci://{reference}"}
    _apply(control_plane, model_document("tagged", source))
    wait_until(lambda: any(p.startswith("tagged-") for p in pods.serving()),
               "the tagged model's pod serving", 90)  # fmt: skip
    reply = gateway.infer("tagged")
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == [0]  # setosa
    recorded = f"oci://{registry.host}/cluster/iris@{pinned}"
    assert _status(control_plane, "tagged")["revisions"][0]["source"] == recorded
    revision = control_plane.get_json("controllerrevision", "-n", NAMESPACE, "tagged-r1")
    assert revision["data"]["spec"]["source"]["uri"] == recorded


@pytest.fixture(scope="module")
def mlflow_registry(
    tmp_path_factory: pytest.TempPathFactory, s3: S3Server, iris_dir: Path
) -> Iterator[MlflowServer]:
    """A real MLflow server whose artifacts are in the S3 store, iris registered, @champion."""
    server = MlflowServer(mlflow_venv(), tmp_path_factory.mktemp("mlflow"), s3)
    try:
        server.register(
            {"log": "onnx", "name": "iris-registered", "onnx": str(iris_dir / "model.onnx")},
            {"alias": "champion", "name": "iris-registered", "version": "1"},
        )
        yield server
    finally:
        server.stop()


def test_an_mlflow_alias_is_resolved_with_a_secret_the_namespace_lets_the_operator_read(
    control_plane: ControlPlane,
    pods: PodRunner,
    gateway: ClusterGateway,
    mlflow_registry: MlflowServer,
) -> None:
    login = mlflow_registry.reader_env()
    control_plane.apply({"apiVersion": "v1", "kind": "Secret",
                         "metadata": {"name": "mlflow-reader", "namespace": NAMESPACE},
                         "stringData": {k: v for k, v in login.items()
                                        if k.startswith("MLFLOW_TRACKING_")}})  # fmt: skip
    for command in (
        ("create", "role", "modelplane-credentials", "--verb=get", "--resource=secrets",
         "--resource-name=mlflow-reader"),
        ("create", "rolebinding", "modelplane-credentials", "--role=modelplane-credentials",
         f"--serviceaccount={OPERATOR_NAMESPACE}:modelplane-operator"),
    ):  # fmt: skip
        control_plane.kubectl("-n", NAMESPACE, *command, check=True)
    source = {"uri": "models:/iris-registered@champion", "endpoint": mlflow_registry.url,
              "credentials": {"secret": "mlflow-reader"}}  # fmt: skip
    _apply(control_plane, model_document("registered", source))
    wait_until(lambda: any(p.startswith("registered-") for p in pods.serving()),
               "the registered model's pod serving", 120)  # fmt: skip
    reply = gateway.infer("registered")
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == [0]  # setosa
    assert _status(control_plane, "registered")["revisions"][0]["source"] == (
        "models:/iris-registered/1"
    )
    assert mlflow_registry.reader_password not in json.dumps(_model(control_plane, "registered"))


def test_a_hugging_face_directory_in_s3_answers_embeddings_on_the_cluster(
    control_plane: ControlPlane, pods: PodRunner, gateway: ClusterGateway, s3: S3Server
) -> None:
    """A transformers model is a directory (config, weights, tokenizer): the fetch step gets
    every file under the prefix, verified by the manifest digest, and the pod serves it."""
    model = minilm_directory()
    client = s3.client()
    for path in sorted(p for p in model.rglob("*") if p.is_file()):
        key = f"hf-layout/minilm/{path.relative_to(model).as_posix()}"
        client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
    login = {"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": "s3-minilm", "namespace": NAMESPACE},
             "stringData": {"AWS_ACCESS_KEY_ID": s3.reader.access_key,
                            "AWS_SECRET_ACCESS_KEY": s3.reader.secret_key}}  # fmt: skip
    control_plane.apply(login)
    source = {"uri": f"s3://{BUCKET}/hf-layout/minilm/", "endpoint": s3.endpoint,
              "sha256": digest_of(model, Limits(), "minilm"),
              "credentials": {"secret": "s3-minilm"}}  # fmt: skip
    resources = "  resources: {cpu: '1', memory: 1Gi}\n"
    _apply(control_plane, model_document("minilm", source, "huggingface", "embedding", resources))
    wait_until(lambda: any(p.startswith("minilm-") for p in pods.serving()),
               "the minilm pod serving", 120)  # fmt: skip
    body = {"model": f"{NAMESPACE}/minilm", "input": ["A man is eating food.", "A man eats."]}
    reply = httpx.post(f"{gateway.url}/v1/embeddings", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    vectors = [d["embedding"] for d in reply.json()["data"]]
    assert [len(v) for v in vectors] == [384, 384]
    assert sum(a * b for a, b in zip(*vectors, strict=True)) > 0.6  # related sentences are near


API_SERVER_OUTAGE_SECONDS = 20  # under kwok's node grace period: the Nodes stay Ready


@pytest.mark.timeout(300, func_only=True)
def test_the_gateway_routes_on_while_the_api_server_is_down(
    control_plane: ControlPlane, pods: PodRunner, gateway: ClusterGateway
) -> None:
    """The API server crashes under steady load and stays down a while: the gateway keeps
    routing from the routes it last saw, and once the API server is back it follows changes
    again. The outage is kept shorter than the node grace period, since kwok's node heartbeats
    go through the same API server (a Node gone NotReady stops its pods, a fault of its own)."""
    spec = "  rollout: {strategy: Immediate}\n  scaling: {minReplicas: 2, maxReplicas: 2}\n"
    _apply(control_plane, iris("steady", spec))
    wait_until(
        lambda: sum(p.startswith("steady-r1") for p in pods.serving()) == 2, "two steady pods", 60
    )
    with steady_load(f"{gateway.url}/v2/models/{NAMESPACE}/steady/infer") as outcomes:
        wait_until(lambda: sum(outcomes.values()) >= 50, "requests flowing")
        with control_plane.down("kube-apiserver", crash=True):
            before = sum(outcomes.values())
            time.sleep(API_SERVER_OUTAGE_SECONDS)
            during = sum(outcomes.values()) - before
        wait_until(lambda: sum(outcomes.values()) >= before + during + 50, "requests after")
    served = sum(n for outcome, n in outcomes.items() if outcome.startswith("200 "))
    total = sum(outcomes.values())
    print(f"{served}/{total} served ({during} while the API server was down): {outcomes}")
    assert during > 0, "nothing was answered while the API server was down"
    assert served / total >= 0.999, outcomes

    # Back: a change made now reaches the gateway.
    changed = time.monotonic()
    _apply(control_plane, iris("steady", spec + "  resources: {cpu: 200m}\n"))

    def new_revision_answers() -> bool:
        try:  # a request the gateway holds for the new revision's first pod may outlast this
            reply = gateway.infer("steady", timeout=10)
        except httpx.TimeoutException:
            return False
        return reply.status_code == 200 and reply.headers["x-modelplane-revision"] == "steady-r2"

    # The operator writes the new Deployment within seconds; kube-controller-manager's informers
    # take up to a minute after an API server restart to make its ReplicaSet and pods.
    wait_until(new_revision_answers, "steady-r2 answering through the gateway", 150)
    print(f"a new revision answered {time.monotonic() - changed:.1f} s after the change")
