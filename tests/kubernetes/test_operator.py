"""The operator end to end on a real control plane: kubectl applies a Model, the operator makes
its children, kwok runs the pods, status and events tell the story."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.kubernetes.conftest import condition, run_as_admin
from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.kubernetes.health import argocd, flux
from tests.kubernetes.operating import MODEL, RunningOperator, apply, events, model, names, ready

pytestmark = pytest.mark.slow

COLLECTOR = "http://otel-collector.observability.svc:4318"


@pytest.fixture(scope="module")
def operator(
    operator_kubeconfig: Path, kwok_node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningOperator]:
    """The operator, run here with the ServiceAccount `modelplane install` made: every test
    below also proves its RBAC is enough."""
    options = ("--model-env", f"OTEL_EXPORTER_OTLP_ENDPOINT={COLLECTOR}")
    log = tmp_path_factory.mktemp("op") / "op.log"
    running = RunningOperator(operator_kubeconfig, log, options=options)
    yield running
    running.stop()


def test_a_model_gets_its_children_and_becomes_ready(
    control_plane: ControlPlane, operator: RunningOperator
) -> None:
    apply(control_plane, "iris", "  resources: {cpu: 500m, memory: 256Mi}\n")
    wait_until(lambda: ready(control_plane, "iris"), "iris Ready", 60)
    assert names(control_plane, "deploy,svc,pdb,controllerrevision", "iris") == {
        "Deployment/iris-r1", "Service/iris-r1", "PodDisruptionBudget/iris-r1",
        "ControllerRevision/iris-r1",
    }  # fmt: skip
    status = model(control_plane, "iris")["status"]
    assert status["stableRevision"] == "iris-r1"
    assert status["revisions"][0] == {
        "name": "iris-r1", "digest": status["revisions"][0]["digest"],
        "source": "https://models.example.com/iris.onnx", "replicas": 1, "readyReplicas": 1,
        "traffic": 100,
    }  # fmt: skip
    assert status["url"].endswith("/v2/models/default/iris")

    deployment = control_plane.get_json("deploy", "iris-r1")
    uid = model(control_plane, "iris")["metadata"]["uid"]
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == uid
    assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "modelplane"
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example.com/modelplane:test"
    assert container["args"][:1] == ["serve"]
    assert "iris-r1" in container["args"]
    served = yaml.safe_load(container["env"][0]["value"])
    assert served["spec"]["source"]["uri"] == "https://models.example.com/iris.onnx"
    # The cluster's telemetry settings reach the pod, with a resource naming pod and revision.
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"][1:]}
    assert env == {
        "MODELPLANE_POD_NAME": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
        "OTEL_EXPORTER_OTLP_ENDPOINT": COLLECTOR,
        "OTEL_SERVICE_NAME": "modelplane-runtime",
        "OTEL_RESOURCE_ATTRIBUTES": "k8s.pod.name=$(MODELPLANE_POD_NAME),"
        "k8s.namespace.name=default,modelplane.model.name=iris,modelplane.revision=iris-r1",
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "256Mi"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    service = control_plane.get_json("svc", "iris-r1")["spec"]
    assert service["selector"] == {
        "modelplane.io/model": "iris",
        "modelplane.io/revision": "iris-r1",
    }
    table = control_plane.kubectl("get", "mdl", "iris", check=True).stdout
    assert "True" in table.splitlines()[1]
    assert "RevisionReady" in table
    assert argocd(model(control_plane, "iris")) == ("Healthy", "RevisionReady: iris-r1 is serving")
    assert flux(model(control_plane, "iris")) == "Current"


def test_a_models_own_telemetry_settings_override_the_clusters(
    control_plane: ControlPlane, operator: RunningOperator
) -> None:
    own = "http://team-collector.team-a.svc:4318"
    apply(
        control_plane, "sampled",
        "  telemetry:\n    env:\n"
        f"      OTEL_EXPORTER_OTLP_ENDPOINT: {own}\n"
        "      OTEL_TRACES_SAMPLER: parentbased_traceidratio\n"
        "      OTEL_TRACES_SAMPLER_ARG: '0.1'\n"
        "      OTEL_RESOURCE_ATTRIBUTES: team=a\n",
    )  # fmt: skip
    wait_until(lambda: ready(control_plane, "sampled"), "sampled Ready", 60)
    pod = control_plane.get_json("deploy", "sampled-r1")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"][1:]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == own
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    assert env["OTEL_RESOURCE_ATTRIBUTES"].startswith("team=a,k8s.pod.name=")

    refused = control_plane.kubectl(
        "apply", "-f", "-",
        input=MODEL.format(name="leaky", extra="  telemetry:\n    env: {AWS_SECRET: x}\n"),
    )  # fmt: skip
    assert refused.returncode != 0
    assert "only OTEL_* variables" in refused.stderr


def test_a_converged_model_costs_no_writes(
    control_plane: ControlPlane, operator: RunningOperator
) -> None:
    apply(control_plane, "quiet")
    wait_until(lambda: ready(control_plane, "quiet"), "quiet Ready", 60)
    time.sleep(1)
    before, passes = operator.writes(), operator.reconciles() or 0
    # A change that is not the operator's business still makes it look: and find nothing to do.
    control_plane.kubectl("label", "mdl", "quiet", "team=search", check=True)
    control_plane.kubectl("annotate", "deploy", "quiet-r1", "note=hello", check=True)
    wait_until(lambda: (operator.reconciles() or 0) >= passes + 2, "passes over quiet", 30)
    time.sleep(1)
    assert operator.writes() == before


def test_a_spec_change_is_a_new_revision_rolled_out_by_canary(
    control_plane: ControlPlane, operator: RunningOperator
) -> None:
    apply(control_plane, "canary")
    wait_until(lambda: ready(control_plane, "canary"), "canary Ready", 60)
    apply(control_plane, "canary", "  batching: {maxBatchSize: 8}\n")

    def split() -> bool:
        status = model(control_plane, "canary")["status"]
        return {r["name"]: r["traffic"] for r in status["revisions"]} == {
            "canary-r1": 90, "canary-r2": 10,
        }  # fmt: skip

    wait_until(split, "traffic split 90/10", 60)
    status = model(control_plane, "canary")["status"]
    assert status["canaryRevision"] == "canary-r2"
    assert status["rollout"]["phase"] == "Progressing"
    assert condition(model(control_plane, "canary"), "RolloutProgressing") == "True"
    assert "Deployment/canary-r2" in names(control_plane, "deploy", "canary")
    # No metric source on this cluster: the analysis waits rather than passing blindly.
    assert "waiting for traffic" in status["rollout"]["lastAnalysis"]["message"]
    assert argocd(model(control_plane, "canary"))[0] == "Progressing"
    assert flux(model(control_plane, "canary")) == "InProgress"

    control_plane.kubectl(
        "annotate", "mdl", "canary", "modelplane.io/rollout-command=promote:1", check=True
    )
    wait_until(
        lambda: model(control_plane, "canary")["status"].get("stableRevision") == "canary-r2",
        "promotion",
        30,
    )
    wait_until(
        lambda: (
            names(control_plane, "deploy,svc,pdb", "canary")
            == {"Deployment/canary-r2", "Service/canary-r2", "PodDisruptionBudget/canary-r2"}
        ),
        "the old revision's children deleted",
        30,
    )
    history = "\n".join(events(control_plane, "canary"))
    assert "RevisionCreated: revision canary-r2 created for generation 2" in history
    assert "RolloutPromoted" in history


def test_a_spec_the_types_refuse_is_reported_and_nothing_changes(
    control_plane: ControlPlane, operator: RunningOperator
) -> None:
    apply(control_plane, "bounds", "  scaling: {minReplicas: 5, maxReplicas: 2}\n")

    def refused() -> bool:
        return condition(model(control_plane, "bounds"), "Stalled") == "True"

    wait_until(refused, "bounds Stalled", 30)
    stalled = next(
        c for c in model(control_plane, "bounds")["status"]["conditions"] if c["type"] == "Stalled"
    )
    assert stalled["reason"] == "InvalidSpec"
    assert "minReplicas" in stalled["message"]
    assert names(control_plane, "deploy", "bounds") == set()
    assert argocd(model(control_plane, "bounds"))[0] == "Degraded"
    assert flux(model(control_plane, "bounds")) == "Failed"
    apply(control_plane, "bounds", "  scaling: {minReplicas: 2, maxReplicas: 2}\n")
    wait_until(lambda: ready(control_plane, "bounds"), "bounds Ready once fixed", 60)
    assert control_plane.get_json("deploy", "bounds-r1")["spec"]["replicas"] == 2


def test_deleting_a_model_collects_everything(
    control_plane: ControlPlane, operator: RunningOperator
) -> None:
    apply(control_plane, "gone")
    wait_until(lambda: ready(control_plane, "gone"), "gone Ready", 60)
    control_plane.kubectl("delete", "mdl", "gone", "--wait=true", check=True)
    wait_until(
        lambda: names(control_plane, "deploy,svc,pdb,controllerrevision,pods", "gone") == set(),
        "children collected",
        60,
    )


def test_a_killed_operator_resumes_without_duplicates_or_writes(
    control_plane: ControlPlane, operator: RunningOperator
) -> None:
    apply(control_plane, "sturdy")
    wait_until(lambda: ready(control_plane, "sturdy"), "sturdy Ready", 60)
    operator.stop(signal.SIGKILL)
    operator.start()
    models = len(control_plane.get_json("mdl")["items"])
    # Every Model passed over at least once by the new process, then a little more time.
    wait_until(lambda: (operator.reconciles() or 0) >= models, "passes over every Model", 30)
    time.sleep(2)
    assert operator.writes() == 0, json.dumps(operator.log.read_text()[-3000:])
    assert names(control_plane, "deploy,svc,pdb,controllerrevision", "sturdy") == {
        "Deployment/sturdy-r1", "Service/sturdy-r1", "PodDisruptionBudget/sturdy-r1",
        "ControllerRevision/sturdy-r1",
    }  # fmt: skip


def test_a_namespace_replica_quota_holds_the_younger_model_back(
    control_plane: ControlPlane, operator: RunningOperator
) -> None:
    """`quota.modelplane.io/max-replicas` on a tenant's Namespace caps the replicas of all its
    Models together: the older Model keeps what it wants, the younger gets what is left and an
    event saying why, and raising the cap lets it grow."""
    namespace = "team-capped"
    control_plane.kubectl("create", "namespace", namespace, check=True)
    try:
        annotate = ("annotate", "--overwrite", "namespace", namespace)
        control_plane.kubectl(*annotate, "quota.modelplane.io/max-replicas=3", check=True)
        scaling = "  scaling: {minReplicas: 2, maxReplicas: 2}\n"

        def create(name: str) -> None:
            document = MODEL.format(name=name, extra=scaling).replace(
                "namespace: default", f"namespace: {namespace}"
            )
            control_plane.kubectl("apply", "-f", "-", input=document, check=True)

        def replicas() -> dict[str, int]:
            listed = control_plane.get_json("deploy", "-n", namespace)["items"]
            return {d["metadata"]["name"]: d["spec"]["replicas"] for d in listed}

        create("older")
        wait_until(lambda: replicas() == {"older-r1": 2}, "the older Model at 2 replicas", 60)
        # Timestamps are whole seconds: the younger one must be a second younger.
        older = control_plane.get_json("mdl", "-n", namespace, "older")
        wait_until(lambda: _now(control_plane) > older["metadata"]["creationTimestamp"],
                   "a second past the older Model's creation", 10)  # fmt: skip
        create("younger")
        wait_until(lambda: replicas() == {"older-r1": 2, "younger-r1": 1}, "2 + 1 replicas", 60)
        said = control_plane.get_json("events", "-n", namespace, "--field-selector",
                                      "reason=ReplicaQuotaReached")["items"]  # fmt: skip
        assert [e["involvedObject"]["name"] for e in said] == ["younger"]
        assert "2 replicas wanted, 1 allowed" in said[0]["message"]
        # A typo keeps the cap that was valid; the operator's log names the annotation.
        control_plane.kubectl(*annotate, "quota.modelplane.io/max-replicas=lots", check=True)
        wait_until(lambda: "quota.modelplane.io/max-replicas" in operator.log.read_text(),
                   "the bad annotation logged", 30)  # fmt: skip
        # A pass over the younger Model since: the cap it applied is still the valid one.
        before = operator.reconciles() or 0
        control_plane.kubectl("annotate", "--overwrite", "mdl", "-n", namespace, "younger",
                              "example.com/touched=1", check=True)  # fmt: skip
        wait_until(lambda: (operator.reconciles() or 0) > before, "a pass since", 30)
        assert replicas() == {"older-r1": 2, "younger-r1": 1}
        control_plane.kubectl(*annotate, "quota.modelplane.io/max-replicas=4", check=True)
        wait_until(lambda: replicas() == {"older-r1": 2, "younger-r1": 2}, "2 + 2 replicas", 60)
    finally:
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _now(plane: ControlPlane) -> str:
    """The API server's clock, as its timestamps write it (a fresh object's creation)."""
    made = plane.kubectl("create", "configmap", "--dry-run=server", "-o", "json", "clock",
                         check=True).stdout  # fmt: skip
    return str(json.loads(made)["metadata"]["creationTimestamp"])


def test_releases_are_recorded_on_revisions_and_read_back_with_kubernetes_rbac(
    control_plane: ControlPlane, operator: RunningOperator
) -> None:
    apply(control_plane, "shipping")
    wait_until(lambda: ready(control_plane, "shipping"), "shipping Ready", 60)
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    annotate = ("annotate", "--overwrite", "mdl", "shipping")
    control_plane.kubectl(*annotate, f"modelplane.io/commit-time={hour_ago}", check=True)
    apply(control_plane, "shipping", "  batching: {maxBatchSize: 8}\n")
    wait_until(lambda: stable(control_plane, "shipping") == "shipping-r1" and canary_of(
        control_plane, "shipping") == "shipping-r2", "r2 rolling out", 30)  # fmt: skip
    control_plane.kubectl(*annotate, "modelplane.io/rollout-command=promote:1", check=True)
    wait_until(lambda: stable(control_plane, "shipping") == "shipping-r2", "r2 promoted", 30)
    apply(control_plane, "shipping", "  batching: {maxBatchSize: 4}\n")
    wait_until(lambda: canary_of(control_plane, "shipping") == "shipping-r3", "r3 rolling", 30)
    control_plane.kubectl(*annotate, "modelplane.io/rollout-command=abort:2", check=True)

    def rolled_back() -> bool:
        rollout = model(control_plane, "shipping")["status"].get("rollout") or {}
        return rollout.get("phase") == "RolledBack"

    wait_until(rolled_back, "r3 aborted", 30)
    marks = control_plane.get_json("controllerrevision", "shipping-r3")["metadata"]["annotations"]
    assert marks["releases.modelplane.io/reason"] == "RolloutAborted"
    assert "releases.modelplane.io/traffic" in marks  # it had taken its 10%

    shown = run_as_admin(control_plane, "releases", "--cluster", "-n", "default", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    items = {r["revision"]: r for r in json.loads(shown.stdout)["items"]}
    assert {name: items[name]["outcome"] for name in ("shipping-r1", "shipping-r2", "shipping-r3")
            } == {"shipping-r1": "Promoted", "shipping-r2": "Promoted",
                  "shipping-r3": "Aborted"}  # fmt: skip
    assert items["shipping-r2"]["leadTimeSeconds"] >= 3600
    assert items["shipping-r3"]["timeToRestoreSeconds"] is not None
    assert operator.release_counts("default", "shipping") == {"promoted": 2, "aborted": 1}
    # What the operator wrote, it writes once: a pass over a settled Model adds nothing.
    before, passes = operator.writes(), operator.reconciles() or 0
    control_plane.kubectl("label", "mdl", "shipping", "team=fraud", check=True)
    wait_until(lambda: (operator.reconciles() or 0) > passes, "a pass over shipping", 30)
    assert operator.writes() == before


def stable(plane: ControlPlane, name: str) -> str | None:
    return model(plane, name)["status"].get("stableRevision")


def canary_of(plane: ControlPlane, name: str) -> str | None:
    return model(plane, name)["status"].get("canaryRevision")
