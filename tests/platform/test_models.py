"""A user's path through ``modelplane up``: apply, see it Ready, infer, change, break, delete."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from tests.platform.conftest import Platform, as_json, manifest, wait_for

SETOSA, VIRGINICA = [5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]


def test_apply_ready_infer_describe(platform: Platform, iris_dir: Path, tmp_path: Path) -> None:
    file = manifest(tmp_path / "iris.yaml", "iris", iris_dir / "model.onnx")
    applied = platform.cli("apply", "-f", str(file))
    assert applied.stdout.strip() == "model.modelplane.io/iris created"
    platform.wait_condition("iris", "Ready", "True", "RevisionReady")

    listed = platform.cli("get", "models")
    assert listed.returncode == 0
    header, row = listed.stdout.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "READY", "REASON", "URL"]
    assert row.split()[:4] == [
        "iris",
        "True",
        "RevisionReady",
        f"{platform.gateway}/v2/models/iris",
    ]

    reply = platform.infer("iris", [SETOSA, VIRGINICA])
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == [0, 2]
    assert reply.headers["x-modelplane-revision"] == "iris-r1"
    namespaced = httpx.post(
        f"{platform.gateway}/v2/models/default/iris/infer",
        json={"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": SETOSA}]},
    )
    assert namespaced.status_code == 200

    infer = platform.cli("infer", "iris", "--data", "[[6.7, 3.0, 5.2, 2.3]]")
    assert infer.returncode == 0, infer.stderr
    assert '"data": [\n        2\n      ]' in infer.stdout

    described = platform.cli("describe", "model", "iris")
    assert "RevisionCreated" in described.stdout
    assert "TrafficShifted" in described.stdout
    assert "iris-r1   100%" in described.stdout

    reapplied = platform.cli("apply", "-f", str(file))
    assert reapplied.stdout.strip() == "model.modelplane.io/iris unchanged"
    assert (
        as_json(platform.cli("get", "models", "iris", "-o", "json"))["metadata"]["generation"] == 1
    )


def test_get_prints_a_list_that_apply_takes_back(
    platform: Platform, iris_dir: Path, tmp_path: Path
) -> None:
    file = manifest(tmp_path / "m.yaml", "listed", iris_dir / "model.onnx")
    labelled = file.read_text().replace("name: listed\n", "name: listed\n  labels: {team: lists}\n")
    file.write_text(labelled)
    platform.cli("apply", "-f", str(file))

    listing = as_json(platform.cli("get", "models", "-l", "team=lists", "-o", "json"))
    assert (listing["apiVersion"], listing["kind"]) == ("v1", "List")
    assert [item["metadata"]["name"] for item in listing["items"]] == ["listed"]
    everywhere = as_json(platform.cli("get", "models", "-A", "-o", "json"))
    assert "listed" in [item["metadata"]["name"] for item in everywhere["items"]]
    nothing = as_json(platform.cli("get", "models", "-l", "team=nobody", "-o", "json"))
    assert nothing["items"] == []
    named = as_json(platform.cli("get", "models", "listed", "-o", "json"))
    assert (named["kind"], named["metadata"]["name"]) == ("Model", "listed")

    as_yaml = platform.cli("get", "models", "-l", "team=lists", "-o", "yaml").stdout
    platform.cli("delete", "model", "listed")
    applied = platform.cli("apply", "-f", "-", stdin=as_yaml)
    assert applied.stdout.strip() == "model.modelplane.io/listed created", applied.stderr
    assert platform.model("listed")["metadata"]["labels"] == {"team": "lists"}
    platform.cli("delete", "model", "listed")


def test_spec_change_moves_traffic_without_failures(
    platform: Platform, iris_dir: Path, tmp_path: Path
) -> None:
    file = manifest(tmp_path / "m.yaml", "switch", iris_dir / "model.onnx")
    platform.cli("apply", "-f", str(file))
    platform.wait_condition("switch", "Ready", "True", "RevisionReady")
    failures: list[str] = []
    revisions: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": SETOSA}]}
            while not stop.is_set():
                reply = client.post(f"{platform.gateway}/v2/models/switch/infer", json=body)
                if reply.status_code != 200:
                    failures.append(f"{reply.status_code} {reply.text}")
                else:
                    revisions.add(reply.headers["x-modelplane-revision"])

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        changed = manifest(
            tmp_path / "m.yaml",
            "switch",
            iris_dir / "model.onnx",
            "  batching: {maxBatchSize: 8}\n",
        )
        assert platform.cli("apply", "-f", str(changed)).stdout.strip().endswith("configured")
        wait_for(
            lambda: platform.model("switch")["status"].get("stableRevision") == "switch-r2",
            "r2 stable",
            60,
        )
        wait_for(lambda: "switch-r2" in revisions, "r2 answering", 30)
        wait_for(lambda: not platform.replica_pids("switch-r1"), "r1 drained and stopped", 60)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert failures == []
    assert revisions == {"switch-r1", "switch-r2"}
    status = platform.model("switch")["status"]
    assert [(r["name"], r["traffic"]) for r in status["revisions"]] == [("switch-r2", 100)]
    assert platform.model("switch")["metadata"]["generation"] == 2


def test_broken_model_file_is_stalled_and_old_revision_keeps_serving(
    platform: Platform, iris_dir: Path, tmp_path: Path
) -> None:
    file = manifest(tmp_path / "m.yaml", "fragile", iris_dir / "model.onnx")
    platform.cli("apply", "-f", str(file))
    platform.wait_condition("fragile", "Ready", "True", "RevisionReady")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not an onnx model")
    platform.cli("apply", "-f", str(manifest(tmp_path / "m.yaml", "fragile", broken)))
    stalled = platform.wait_condition("fragile", "Stalled", "True", "RolledBack", timeout=90)
    assert "onnxruntime cannot load broken.onnx" in stalled["message"]
    ready = platform.condition("fragile", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RolledBack")
    assert "rolled back to fragile-r1" in ready["message"]
    assert platform.model("fragile")["status"]["rollout"]["phase"] == "RolledBack"
    reply = platform.infer("fragile", [SETOSA])
    assert reply.status_code == 200
    assert reply.headers["x-modelplane-revision"] == "fragile-r1"
    logs = platform.cli("logs", "model", "fragile", "--revision", "fragile-r2")
    assert "onnxruntime cannot load broken.onnx" in logs.stdout


def test_crashed_replica_is_restarted_and_reported(
    platform: Platform, iris_dir: Path, tmp_path: Path
) -> None:
    file = manifest(
        tmp_path / "m.yaml", "phoenix", iris_dir / "model.onnx", "  scaling: {minReplicas: 2}\n"
    )
    platform.cli("apply", "-f", str(file))
    wait_for(lambda: len(platform.replica_pids("phoenix-r1")) == 2, "two replicas", 30)
    platform.wait_condition("phoenix", "Reconciling", "False", "Converged")
    victim = platform.replica_pids("phoenix-r1")[0]
    __import__("os").kill(victim, 9)
    ok = sum(platform.infer("phoenix", [SETOSA]).status_code == 200 for _ in range(20))
    assert ok == 20  # the other replica (and retries) carry the traffic
    wait_for(
        lambda: (
            len(platform.replica_pids("phoenix-r1")) == 2
            and victim not in platform.replica_pids("phoenix-r1")
        ),
        "replacement replica",
        30,
    )
    platform.wait_condition("phoenix", "Reconciling", "False", "Converged")


def test_delete_stops_replicas_and_the_route(
    platform: Platform, iris_dir: Path, tmp_path: Path
) -> None:
    file = manifest(tmp_path / "m.yaml", "ephemeral", iris_dir / "model.onnx")
    platform.cli("apply", "-f", str(file))
    platform.wait_condition("ephemeral", "Ready", "True")
    deleted = platform.cli("delete", "model", "ephemeral")
    assert deleted.stdout.strip() == 'model.modelplane.io "ephemeral" deleted'
    wait_for(lambda: not platform.replica_pids("ephemeral-r1"), "replicas gone", 40)
    wait_for(lambda: platform.infer("ephemeral", [SETOSA]).status_code == 404, "route gone", 10)
    missing = platform.cli("get", "models", "ephemeral")
    assert missing.returncode == 1
    assert 'models "ephemeral" not found' in missing.stderr


def test_invalid_manifest_applies_nothing(
    platform: Platform, iris_dir: Path, tmp_path: Path
) -> None:
    good = manifest(tmp_path / "a.yaml", "half-a", iris_dir / "model.onnx").read_text()
    bad = good.replace("half-a", "half-b").replace("task: classification", "task: dreaming")
    both = tmp_path / "both.yaml"
    both.write_text(good + "---\n" + bad)
    result = platform.cli("apply", "-f", str(both))
    assert result.returncode == 4
    assert "spec.task: Input should be" in result.stderr
    assert platform.cli("get", "models", "half-a").returncode == 1
