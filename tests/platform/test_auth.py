"""`modelplane up --auth`: API keys with roles per namespace on the control API and the gateway.
Two teams, each deploying in its own namespace: every endpoint refuses every credential that is
not good for it (none, malformed, a wrong secret, the other team's key, a revoked key, a viewer
writing), and accepts the right one."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gitops.test_sync import _git, commit
from tests.platform.conftest import API, METRICS, Platform, running_in, wait_for
from tests.processes import modelplane, scraped

ROW = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4],
                   "data": [5.1, 3.5, 1.4, 0.2]}]}  # fmt: skip


def manifest(name: str, namespace: str, uri: str) -> str:
    return (
        f"apiVersion: modelplane.io/v1alpha1\nkind: Model\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec:\n  source: {{uri: '{uri}'}}\n  format: onnx\n  task: classification\n"
        "  rollout: {strategy: Immediate}\n"
    )


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from running_in(tmp_path_factory, "secured", options=("--auth",))


@pytest.fixture(scope="module")
def admin(secured: Platform) -> str:
    path = secured.state_dir / "admin.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The banner follows both servers' start; /healthz (what Platform waits for) may come first.
    wait_for(lambda: "auth         API keys" in secured.log.read_text(), "the auth banner", 30)
    return path.read_text().strip()


def dormant_manifest(name: str, uri: str) -> str:
    """A Model in team-a that starts no replica until asked."""
    return manifest(name, "team-a", uri) + "  scaling: {minReplicas: 0}\n"


def create_key(platform: Platform, admin: str, name: str, *grants: str) -> str:
    made = platform.cli("auth", "keys", "create", name,
                        *(f"--grant={g}" for g in grants), key=admin)  # fmt: skip
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


@pytest.fixture(scope="module")
def teams(secured: Platform, admin: str, iris_dir: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, str]:  # fmt: skip
    keys = {
        "a": create_key(secured, admin, "team-a", "team-a=deployer"),
        "b": create_key(secured, admin, "team-b", "team-b=deployer"),
        "a-viewer": create_key(secured, admin, "team-a-dashboards", "team-a=viewer"),
        "revoked": create_key(secured, admin, "leaver", "team-a=deployer"),
    }
    uri = (iris_dir / "model.onnx").as_uri()
    work = tmp_path_factory.mktemp("manifests")
    for team in ("a", "b"):
        path = work / f"{team}.yaml"
        path.write_text(manifest("scorer", f"team-{team}", uri))
        applied = secured.cli("apply", "-f", str(path), key=keys[team])
        assert applied.returncode == 0, applied.stderr
    for team in ("a", "b"):
        wait_for(lambda t=team: _ready(secured, admin, f"team-{t}"), f"team-{team} Ready", 60)
    key_id = keys["revoked"].split("_")[1]
    assert secured.cli("auth", "keys", "revoke", key_id, key=admin).returncode == 0
    return keys


def _ready(platform: Platform, key: str, namespace: str) -> bool:
    reply = httpx.get(f"{platform.api}{API}/namespaces/{namespace}/models/scorer",
                      headers=_bearer(key), timeout=5)  # fmt: skip
    conditions = reply.json().get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key is not None else {}


def endpoints(platform: Platform, namespace: str) -> list[tuple[str, str, str, Any]]:
    """(what, method, url, json body) for each thing a deployer of ``namespace`` may do."""
    one = f"{platform.api}{API}/namespaces/{namespace}/models/scorer"
    body = {"apiVersion": "modelplane.io/v1alpha1", "kind": "Model",
            "metadata": {"name": "scorer", "namespace": namespace},
            "spec": {"source": {"uri": "file:///nowhere.onnx"}, "format": "onnx",
                     "task": "classification"}}  # fmt: skip
    return [
        ("list", "GET", f"{platform.api}{API}/namespaces/{namespace}/models", None),
        ("get", "GET", one, None),
        ("events", "GET", f"{one}/events", None),
        ("revisions", "GET", f"{one}/revisions", None),
        ("logs", "GET", f"{one}/logs", None),
        ("metrics", "GET", f"{platform.api}{METRICS}/namespaces/{namespace}/models/scorer", None),
        ("create", "POST", f"{platform.api}{API}/namespaces/{namespace}/models",
         {**body, "metadata": {"name": "other", "namespace": namespace}}),
        ("replace", "PUT", one, body),
        ("delete", "DELETE", f"{one}-gone", None),
        ("infer", "POST", f"{platform.gateway}/v2/models/{namespace}/scorer/infer", ROW),
        ("metadata", "GET", f"{platform.gateway}/v2/models/{namespace}/scorer", None),
    ]  # fmt: skip


def call(method: str, url: str, body: Any, key: str | None) -> httpx.Response:
    return httpx.request(method, url, json=body, headers=_bearer(key), timeout=30)


def test_every_endpoint_refuses_every_wrong_credential(
    secured: Platform, admin: str, teams: dict[str, str]
) -> None:
    a, b, revoked = teams["a"], teams["b"], teams["revoked"]
    key_id, secret = a.split("_")[1], a.split("_")[2]
    wrong_secret = f"mpk_{key_id}_{secret[::-1]}"
    refusals = {
        "no credential": (None, 401),
        "not a key": ("hunter2", 401),
        "a wrong secret": (wrong_secret, 401),
        "a revoked key": (revoked, 401),
        "the other team's key": (b, 403),
    }
    seen = []
    for what, method, url, body in endpoints(secured, "team-a"):
        for credential, (key, status) in refusals.items():
            reply = call(method, url, body, key)
            seen.append((what, credential, reply.status_code))
            assert reply.status_code == status, f"{what} with {credential}: {reply.text}"
            if status == 401:
                assert reply.headers["www-authenticate"].startswith("Bearer")
    assert len(seen) == 55  # 11 endpoints x 5 wrong credentials, 100% refused
    forbidden_here = {"model_namespace": "team-a", "reason": "forbidden"}
    assert scraped(secured.gateway, "modelplane_gateway_refused_requests_total", forbidden_here)
    # The refusals say why, and name the role needed.
    forbidden = call("GET", f"{secured.api}{API}/namespaces/team-a/models", None, b).json()
    assert forbidden["reason"] == "Forbidden"
    assert "needs the role viewer" in forbidden["message"]
    assert "revoked" in call("GET", f"{secured.api}{API}/models", None, revoked).json()["message"]

    # The right key does each of them (delete of a missing Model: 404, past access control).
    for what, method, url, body in endpoints(secured, "team-a"):
        reply = call(method, url, body, a)
        assert reply.status_code in (200, 201, 404), f"{what} with team-a's key: {reply.text}"
        assert reply.status_code != 404 or what == "delete"


def test_a_viewer_reads_and_infers_but_cannot_deploy(
    secured: Platform, teams: dict[str, str]
) -> None:
    viewer = teams["a-viewer"]
    for what, method, url, body in endpoints(secured, "team-a"):
        reply = call(method, url, body, viewer)
        writing = method in ("POST", "PUT", "DELETE") and what != "infer"
        assert reply.status_code == (403 if writing else 200), f"{what}: {reply.text}"


def test_lists_across_namespaces_show_only_what_the_key_may_read(
    secured: Platform, admin: str, teams: dict[str, str]
) -> None:
    def namespaces(key: str) -> set[str]:
        items = call("GET", f"{secured.api}{API}/models", None, key).json()["items"]
        return {m["metadata"]["namespace"] for m in items}

    assert namespaces(teams["a"]) == {"team-a"}
    assert namespaces(teams["b"]) == {"team-b"}
    assert namespaces(admin) == {"team-a", "team-b"}
    load = call("GET", f"{secured.api}{METRICS}/models", None, teams["b"]).json()["items"]
    assert {m["namespace"] for m in load} == {"team-b"}
    listed = secured.cli("get", "models", "-A", key=teams["b"])
    assert listed.returncode == 0, listed.stderr
    assert "team-b" in listed.stdout
    assert "team-a" not in listed.stdout


def test_keys_and_git_sources_are_for_admins_and_git_syncs_under_auth(
    secured: Platform, admin: str, teams: dict[str, str], iris_dir: Path, tmp_path: Path
) -> None:
    refused = secured.cli("auth", "keys", "create", "sneaky", "--grant=*=admin", key=teams["a"])
    assert refused.returncode != 0
    assert "needs the role admin" in refused.stderr
    listed = secured.cli("auth", "keys", "list", key=admin)
    assert listed.returncode == 0
    assert "team-a-dashboards" in listed.stdout
    assert "mpk_" not in listed.stdout  # never a key, only ids

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    uri = (iris_dir / "model.onnx").as_uri()
    commit(repo, {"models/s.yaml": manifest("synced", "team-a", uri)}, "one model")
    added = secured.cli("gitops", "add", "shared", str(repo), "--path", "models",
                        key=teams["a"])  # fmt: skip
    assert added.returncode != 0  # a deployer of one namespace may not add a source
    added = secured.cli("gitops", "add", "shared", str(repo), "--path", "models", key=admin)
    assert added.returncode == 0, added.stderr

    def applied() -> bool:
        items = call("GET", f"{secured.api}/gitops", None, admin).json()["items"]
        return items[0]["result"] == "Applied"

    wait_for(applied, "the source's commit applied through the secured control API", 30)
    assert call("GET", f"{secured.api}{API}/namespaces/team-a/models/synced", None,
                teams["a"]).status_code == 200  # fmt: skip
    # A git host cannot sync a source without a webhook secret: it has no key to send.
    pushed = call("POST", f"{secured.api}/gitops/shared/webhook", {"ref": "refs/heads/main"}, None)
    assert pushed.status_code == 403, pushed.text
    assert "--webhook-secret-file" in pushed.json()["message"]


def _status(platform: Platform, admin: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = call("GET", f"{platform.api}/gitops/{name}", None, admin).json()
    return found


def test_a_git_hosts_signed_push_syncs_without_an_api_key(
    secured: Platform, admin: str, tmp_path: Path
) -> None:
    hook_key = "s3cret-for-the-git-host-0123456789"
    secret_file = tmp_path / "webhook.secret"
    secret_file.write_text(hook_key + "\n")
    repo = tmp_path / "hooked"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    dormant = "file:///nowhere/model.onnx"  # no replica: minReplicas 0
    first = commit(repo, {"models/a.yaml": dormant_manifest("hooked-a", dormant)}, "one")
    added = secured.cli("gitops", "add", "hooked", str(repo), "--path", "models", "--interval",
                        "600", "--webhook-secret-file", str(secret_file), key=admin)  # fmt: skip
    assert added.returncode == 0, added.stderr
    wait_for(lambda: _status(secured, admin, "hooked")["lastAppliedCommit"] == first,
             "the first commit applied", 30)  # fmt: skip
    second = commit(repo, {"models/b.yaml": dormant_manifest("hooked-b", dormant)}, "two")
    hook = f"{secured.api}/gitops/hooked/webhook"

    def push(headers: dict[str, str], ref: str = "refs/heads/main") -> httpx.Response:
        body = json.dumps({"ref": ref, "after": second}).encode()
        signed = hmac.new(hook_key.encode(), body, hashlib.sha256).hexdigest()
        headers = {k: v.format(signed=signed) for k, v in headers.items()}
        return httpx.post(hook, content=body, headers=headers, timeout=10)

    # Refused: a wrong signature, none, a wrong token; ignored: a push to another branch.
    wrong = push({"X-Hub-Signature-256": "sha256=" + "0" * 64, "X-GitHub-Event": "push"})
    assert wrong.status_code == 401, wrong.text
    assert "X-Hub-Signature-256 is not the HMAC-SHA256" in wrong.json()["message"]
    assert push({}).status_code == 401
    assert push({"X-Gitlab-Token": hook_key[::-1]}).status_code == 401
    elsewhere = push({"X-Hub-Signature-256": "sha256={signed}"}, ref="refs/heads/dev")
    assert elsewhere.status_code == 202, elsewhere.text
    assert elsewhere.json()["syncing"] == []
    assert "a push to refs/heads/dev" in elsewhere.json()["ignored"]
    ping = push({"X-Hub-Signature-256": "sha256={signed}", "X-GitHub-Event": "ping"})
    assert ping.status_code == 202, ping.text
    assert ping.json()["syncing"] == []
    assert _status(secured, admin, "hooked")["lastAttemptedCommit"] == first
    # Only this route of a source is open: the others still need a key.
    assert httpx.post(f"{secured.api}/gitops/hooked/sync").status_code == 401
    assert httpx.get(hook).status_code == 401

    signed = push({"X-Hub-Signature-256": "sha256={signed}", "X-GitHub-Event": "push"})
    assert signed.status_code == 202, signed.text
    assert signed.json() == {"syncing": ["hooked"]}
    wait_for(lambda: _status(secured, admin, "hooked")["lastAppliedCommit"] == second,
             "the pushed commit applied", 30)  # fmt: skip
    third = commit(repo, {"models/a.yaml": None}, "three")
    gitlab = push({"X-Gitlab-Token": hook_key, "X-Gitlab-Event": "Push Hook"})
    assert gitlab.status_code == 202, gitlab.text
    wait_for(lambda: _status(secured, admin, "hooked")["lastAppliedCommit"] == third,
             "the commit pushed through GitLab's hook applied", 30)  # fmt: skip

    # The secret is kept for its owner only: never in a reply, the CLI's status or the log.
    listed = call("GET", f"{secured.api}/gitops", None, admin)
    assert hook_key not in listed.text
    assert _status(secured, admin, "hooked")["webhook"] == {
        "path": "/gitops/hooked/webhook", "signed": True
    }  # fmt: skip
    status = secured.cli("gitops", "status", key=admin)
    assert status.returncode == 0, status.stderr
    assert "POST /gitops/hooked/webhook, signed" in status.stdout
    assert hook_key not in status.stdout + status.stderr
    saved = secured.state_dir / "gitops" / "sources.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    log = secured.log.read_text()
    assert "webhook for git source 'hooked' from 127.0.0.1 refused: X-Hub-Signature-256" in log
    assert hook_key not in log


def test_an_open_platform_is_refused_on_a_public_address(tmp_path: Path) -> None:
    started = subprocess.run(
        modelplane("up", "--host", "0.0.0.0", "--state-dir", str(tmp_path / "s")),
        capture_output=True, text=True, timeout=60, env=os.environ.copy(),
    )  # fmt: skip
    assert started.returncode == 2
    assert "without --auth would let anyone who reaches it deploy models" in started.stderr
    assert not (tmp_path / "s").exists()
