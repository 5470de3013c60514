"""The control API speaks Kubernetes: conflicts, validation, patches, status, watch."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.platform.conftest import API, Platform, manifest

NS = f"{API}/namespaces/team-a/models"


def body(iris_dir: Path, name: str, tmp_path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        manifest(tmp_path / f"{name}.yaml", name, iris_dir / "model.onnx").read_text()
    )
    document["metadata"]["namespace"] = "team-a"
    document["spec"]["scaling"] = {"minReplicas": 0, "scaleToZeroAfterSeconds": 0}
    return document


def test_create_get_conflict_and_generation(
    platform: Platform, iris_dir: Path, tmp_path: Path
) -> None:
    created = httpx.post(platform.api + NS, json=body(iris_dir, "api-a", tmp_path))
    assert created.status_code == 201
    first = created.json()
    assert first["metadata"]["generation"] == 1
    again = httpx.post(platform.api + NS, json=body(iris_dir, "api-a", tmp_path))
    assert again.status_code == 409
    assert again.json()["reason"] == "AlreadyExists"

    current = httpx.get(f"{platform.api}{NS}/api-a").json()  # the controller wrote status since
    changed = dict(current)
    changed["spec"] = {
        **current["spec"],
        "scaling": {"minReplicas": 0, "maxReplicas": 3, "scaleToZeroAfterSeconds": 0},
    }
    updated = httpx.put(f"{platform.api}{NS}/api-a", json=changed)
    assert updated.status_code == 200
    assert updated.json()["metadata"]["generation"] == 2
    stale = httpx.put(f"{platform.api}{NS}/api-a", json=changed)  # carries the old resourceVersion
    assert stale.status_code == 409
    assert stale.json()["reason"] == "Conflict"
    assert "the object has been modified" in stale.json()["message"]


def test_invalid_spec_is_422_with_field_causes(
    platform: Platform, iris_dir: Path, tmp_path: Path
) -> None:
    document = body(iris_dir, "api-bad", tmp_path)
    document["spec"]["scaling"] = {"minReplicas": 5, "maxReplicas": 1}
    document["spec"]["format"] = "pickle"
    reply = httpx.post(platform.api + NS, json=document)
    assert reply.status_code == 422
    status = reply.json()
    assert status["kind"] == "Status"
    assert status["reason"] == "Invalid"
    fields = {c["field"] for c in status["details"]["causes"]}
    assert "spec.format" in fields
    assert httpx.get(f"{platform.api}{NS}/api-bad").status_code == 404
    junk = httpx.post(platform.api + NS, content=b"{not: [valid")
    assert junk.status_code == 422


def test_merge_patch_and_status_subresource(
    platform: Platform, iris_dir: Path, tmp_path: Path
) -> None:
    httpx.post(platform.api + NS, json=body(iris_dir, "api-p", tmp_path))
    patched = httpx.patch(
        f"{platform.api}{NS}/api-p",
        content=json.dumps(
            {"metadata": {"labels": {"tier": "gold"}}, "spec": {"scaling": {"maxReplicas": 2}}}
        ),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    model = patched.json()
    assert model["metadata"]["labels"] == {"tier": "gold"}
    assert model["spec"]["scaling"]["maxReplicas"] == 2
    assert model["spec"]["scaling"]["minReplicas"] == 0  # merged, not replaced
    listed = httpx.get(f"{platform.api}{NS}", params={"labelSelector": "tier=gold"}).json()
    assert [m["metadata"]["name"] for m in listed["items"]] == ["api-p"]
    spec_via_status = httpx.patch(
        f"{platform.api}{NS}/api-p/status",
        content=json.dumps({"spec": {"scaling": {"maxReplicas": 4}}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert spec_via_status.status_code == 200
    assert httpx.get(f"{platform.api}{NS}/api-p").json()["spec"]["scaling"]["maxReplicas"] == 2


def test_watch_streams_changes_and_resumes(
    platform: Platform, iris_dir: Path, tmp_path: Path
) -> None:
    listed = httpx.get(f"{platform.api}{API}/namespaces/team-w/models").json()
    since = listed["metadata"]["resourceVersion"]
    events: list[dict[str, Any]] = []

    def watch() -> None:
        params = {"watch": "true", "resourceVersion": since, "timeoutSeconds": "20"}
        with httpx.stream(
            "GET", f"{platform.api}{API}/namespaces/team-w/models", params=params, timeout=30
        ) as reply:
            for line in reply.iter_lines():
                if line:
                    events.append(json.loads(line))
                if any(e["type"] == "DELETED" for e in events):
                    return

    watcher = threading.Thread(target=watch)
    watcher.start()
    document = body(iris_dir, "watched", tmp_path)
    document["metadata"]["namespace"] = "team-w"
    httpx.post(f"{platform.api}{API}/namespaces/team-w/models", json=document)
    httpx.delete(f"{platform.api}{API}/namespaces/team-w/models/watched")
    watcher.join(timeout=30)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "ADDED"
    assert kinds[-1] == "DELETED"
    assert {e["object"]["metadata"]["name"] for e in events} == {"watched"}
    gone = httpx.get(
        f"{platform.api}{API}/models", params={"watch": "true", "resourceVersion": "abc"}
    )
    assert gone.status_code == 422
