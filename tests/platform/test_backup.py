"""`modelplane backup` and `modelplane restore` against real platforms: a backup taken while
Models are applied and requests served, restored into a fresh state directory, brings back every
Model serving with its revisions numbered the same, a canary at the step it had reached, API keys
that still authenticate, quotas still enforced and the git source. A restore under a running
platform, or of a damaged backup, is refused and changes nothing. The same state as a platform
left it before schema versions were kept is adopted whole; one of a newer schema is refused."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelplane.backends.local.schema import SCHEMA_VERSION
from tests.gitops.test_sync import _git, commit
from tests.platform.conftest import API, Platform, wait_for
from tests.platform.test_auth import ROW, create_key, manifest
from tests.processes import free_port, modelplane

CANARY = "{strategy: Canary, steps: [{weight: 20, pauseSeconds: 3600}]}"
FIXED = ("team/steady", "team/canary", "limited/metered", "default/from-git")


@dataclass
class Source:
    """The platform backed up, and what it held when it was."""

    platform: Platform
    admin: str
    deployer: str
    backup: Path
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    revisions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    applied_before: set[str] = field(default_factory=set)  # load Models applied before it began
    listed: dict[str, Any] = field(default_factory=dict)  # quotas, git sources, keys
    steady_requests: int = 0  # team/steady's in its usage, before the load began


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _get(platform: Platform, key: str, path: str) -> Any:
    reply = httpx.get(f"{platform.api}{path}", headers=_bearer(key), timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _model(platform: Platform, key: str, which: str) -> dict[str, Any]:
    namespace, name = which.split("/")
    found: dict[str, Any] = _get(platform, key, f"{API}/namespaces/{namespace}/models/{name}")
    return found


def _infer(platform: Platform, key: str, which: str) -> httpx.Response:
    url = f"{platform.gateway}/v2/models/{which}/infer"
    return httpx.post(url, json=ROW, headers=_bearer(key), timeout=60)


def _apply(platform: Platform, key: str, text: str, where: Path) -> None:
    where.write_text(text)
    applied = platform.cli("apply", "-f", str(where), key=key)
    assert applied.returncode == 0, applied.stderr


def _traffic(model: dict[str, Any]) -> dict[str, int]:
    return {r["name"]: r["traffic"] for r in model["status"].get("revisions", [])}


def _setup(platform: Platform, admin: str, uri: str, work: Path) -> str:
    """Models (one rolled to r2, a canary held at its first step, one under a quota, one from
    git), a deployer key, a quota and a git source; the deployer's key."""
    deployer = create_key(platform, admin, "deployer", "team=deployer")
    _apply(platform, admin, manifest("steady", "team", uri), work / "steady.yaml")
    _apply(platform, admin, manifest("metered", "limited", uri), work / "metered.yaml")
    canary = manifest("canary", "team", uri).replace("{strategy: Immediate}", CANARY)
    _apply(platform, admin, canary, work / "canary.yaml")
    for which in ("team/steady", "team/canary"):
        wait_for(lambda w=which: _infer(platform, admin, w).status_code == 200, which, 90)
    batched = "  batching: {maxBatchSize: 4}\n"
    _apply(platform, admin, manifest("steady", "team", uri) + batched, work / "steady.yaml")
    _apply(platform, admin, canary + batched, work / "canary.yaml")
    wait_for(lambda: _traffic(_model(platform, admin, "team/canary"))
             == {"canary-r1": 80, "canary-r2": 20}, "canary at 20%", 90)  # fmt: skip
    wait_for(lambda: _model(platform, admin, "team/steady")["status"].get("stableRevision")
             == "steady-r2", "steady-r2", 90)  # fmt: skip
    assert platform.cli("quota", "set", "limited", "--rps", "1", key=admin).returncode == 0
    repo = work / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    from_git = manifest("from-git", "default", uri) + "  scaling: {minReplicas: 0}\n"
    commit(repo, {"models/from-git.yaml": from_git}, "a Model")
    added = platform.cli("gitops", "add", "team-git", str(repo), "--path", "models",
                         "--interval", "600", key=admin)  # fmt: skip
    assert added.returncode == 0, added.stderr
    wait_for(lambda: _get(platform, admin, "/gitops")["items"][0]["result"] == "Applied",
             "git source applied", 60)  # fmt: skip
    return deployer


class Load:
    """Until stopped: one thread applies Models and changes them through the control API, one
    sends requests through the gateway."""

    def __init__(self, platform: Platform, admin: str, uri: str) -> None:
        self.platform, self.admin, self.uri = platform, admin, uri
        self.applied: list[str] = []
        self.writes = self.served = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._write), threading.Thread(target=self._ask)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        wait_for(lambda: self.writes >= 3 and self.served >= 1, "load under way", 60)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _write(self) -> None:
        models = f"{self.platform.api}{API}/namespaces/team/models"
        headers = {**_bearer(self.admin), "Content-Type": "application/yaml"}
        while not self._stop.is_set():
            name = f"load-{self.writes % 3}"
            spec = manifest(name, "team", self.uri)
            spec += f"  scaling: {{minReplicas: 0, maxReplicas: {self.writes % 5 + 1}}}\n"
            if name in self.applied:
                done = httpx.put(f"{models}/{name}", content=spec, headers=headers, timeout=10)
            else:
                done = httpx.post(models, content=spec, headers=headers, timeout=10)
                self.applied.append(name)
            assert done.status_code in (200, 201), done.text
            self.writes += 1

    def _ask(self) -> None:
        while not self._stop.is_set():
            if _infer(self.platform, self.admin, "team/steady").status_code == 200:
                self.served += 1


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, iris_dir: Path) -> Iterator[Source]:
    root = tmp_path_factory.mktemp("backed-up")
    platform = Platform(root / "state", root / "up.log", options=("--auth",))
    try:
        admin = (platform.state_dir / "admin.key").read_text().strip()
        uri = (iris_dir / "model.onnx").as_uri()
        deployer = _setup(platform, admin, uri, root)
        backed_up = Source(platform, admin, deployer, root / "backup.tar.gz")
        backed_up.steady_requests = _steady_requests(platform, admin)
        with Load(platform, admin, uri) as load:
            backed_up.applied_before = set(load.applied)
            before = (load.writes, load.served)
            taken = platform.cli("backup", str(backed_up.backup), key=admin)
            during = (load.writes - before[0], load.served - before[1])
        assert taken.returncode == 0, taken.stderr
        assert min(during) > 0, during  # written to and served while the backup was taken
        assert "backed up " in taken.stdout
        assert backed_up.backup.stat().st_mode & 0o077 == 0  # it holds secrets: owner only
        for which in FIXED:
            backed_up.models[which] = _model(platform, admin, which)
            namespace, name = which.split("/")
            listed = _get(platform, admin, f"{API}/namespaces/{namespace}/models/{name}/revisions")
            backed_up.revisions[which] = [(r["name"], r["digest"]) for r in listed["items"]]
        backed_up.listed = {path: _get(platform, admin, path)["items"]
                            for path in ("/quotas", "/gitops", "/auth/keys")}  # fmt: skip
        yield backed_up
    finally:
        platform.stop()


def _steady_requests(platform: Platform, key: str) -> int:
    """team/steady's requests as its team's usage tells them."""
    found = _get(platform, key, "/apis/usage.modelplane.io/v1alpha1/namespaces/team/usage")
    (steady,) = [m for m in found["teams"][0]["models"] if m["name"] == "steady"]
    return int(steady["summary"]["requests"])


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(modelplane(*args), capture_output=True, text=True, timeout=120)


def _files(state_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(state_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(state_dir.rglob("*"))
        if p.is_file() and p.name != "up.lock" and "logs" not in p.parts
    }


def test_a_restore_or_a_second_up_under_a_running_platform_is_refused(source: Source) -> None:
    state_dir = source.platform.state_dir
    pid = source.platform.process.pid
    second = _run("up", "--state-dir", str(state_dir), "--port", str(free_port()),
                  "--gateway-port", str(free_port()))  # fmt: skip
    assert second.returncode == 1
    assert f"error: {state_dir} is in use by a running modelplane up (pid {pid})" in second.stderr
    refused = _run("restore", str(source.backup), "--state-dir", str(state_dir))
    assert refused.returncode == 1
    assert f"error: {state_dir} is in use by a running modelplane up (pid {pid})" in refused.stderr
    assert "hint: stop it (Ctrl-C), run restore again" in refused.stderr
    assert not list(state_dir.glob("replaced-*"))
    assert _infer(source.platform, source.admin, "team/steady").status_code == 200
    offline = _run("backup", str(source.backup.with_name("x.tar.gz")), "--state-dir",
                   str(state_dir))  # fmt: skip
    assert offline.returncode == 1
    assert "leave out --state-dir to back it up through its control API" in offline.stderr
    # The backup holds every key's hash and every webhook secret: admins only.
    assert (
        source.platform.cli(
            "backup", str(source.backup.with_name("denied.tar.gz")), key=source.deployer
        ).returncode
        == 1
    )
    denied = httpx.get(f"{source.platform.api}/backup", headers=_bearer(source.deployer))
    assert denied.status_code == 403


def test_a_restored_platform_serves_everything_it_held(
    source: Source, tmp_path: Path, iris_dir: Path
) -> None:
    state_dir = tmp_path / "restored"
    restored = _run("restore", str(source.backup), "--state-dir", str(state_dir))
    assert restored.returncode == 0, restored.stderr
    assert re.search(r"1 quota, \d+ usage hours?, 1 git source \(taken ", restored.stdout)
    platform = Platform(state_dir, tmp_path / "up.log", options=("--auth",))
    try:
        _check_restored(platform, source)
    finally:
        platform.stop()


def _check_restored(platform: Platform, source: Source) -> None:
    admin = (platform.state_dir / "admin.key").read_text().strip()
    assert admin == source.admin
    # Usage up to the backup (before any request here): what was in memory was written first.
    assert _steady_requests(platform, admin) >= source.steady_requests > 0
    listed = {f"{m['metadata']['namespace']}/{m['metadata']['name']}"
              for m in _get(platform, admin, f"{API}/models")["items"]}  # fmt: skip
    loaded = {w for w in listed if w.startswith("team/load-")}
    assert listed == set(FIXED) | loaded
    assert {f"team/{n}" for n in source.applied_before} <= loaded
    for which in sorted(listed):  # every Model serves, those scaled to zero too
        wait_for(lambda w=which: _infer(platform, admin, w).status_code == 200, which, 90)
    for which in FIXED:
        namespace, name = which.split("/")
        revisions = _get(platform, admin, f"{API}/namespaces/{namespace}/models/{name}/revisions")
        assert [(r["name"], r["digest"]) for r in revisions["items"]] == source.revisions[which]
    before, after = source.models["team/canary"], _model(platform, admin, "team/canary")
    assert after["status"]["rollout"]["phase"] == "Progressing"
    for kept in ("step", "stepStartedAt"):
        assert after["status"]["rollout"][kept] == before["status"]["rollout"][kept]
    assert _traffic(after) == _traffic(before) == {"canary-r1": 80, "canary-r2": 20}
    assert _model(platform, admin, "team/steady")["status"]["stableRevision"] == "steady-r2"
    # Keys: the deployer's still works in its namespace, and still only there.
    assert httpx.get(f"{platform.api}{API}/namespaces/team/models",
                     headers=_bearer(source.deployer)).status_code == 200  # fmt: skip
    assert httpx.get(f"{platform.api}{API}/namespaces/limited/models",
                     headers=_bearer(source.deployer)).status_code == 403  # fmt: skip
    assert httpx.get(f"{platform.api}{API}/namespaces/team/models").status_code == 401
    for path in ("/quotas", "/auth/keys"):
        assert _get(platform, admin, path)["items"] == source.listed[path]
    sources = _get(platform, admin, "/gitops")["items"]
    assert [(s["name"], s["lastAppliedCommit"]) for s in sources] == [
        (s["name"], s["lastAppliedCommit"]) for s in source.listed["/gitops"]
    ]
    metered = "limited/metered"
    wait_for(lambda: _infer(platform, admin, metered).status_code == 200, "within quota", 10)
    answers = [_infer(platform, admin, metered).status_code for _ in range(5)]
    assert 429 in answers  # over its 1 request/s


def test_a_damaged_backup_is_refused_and_the_state_is_kept(source: Source) -> None:
    held = len(_get(source.platform, source.admin, f"{API}/models")["items"])
    source.platform.stop()
    state_dir = source.platform.state_dir
    before = _files(state_dir)
    data = bytearray(source.backup.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    damaged = source.backup.with_name("damaged.tar.gz")
    damaged.write_bytes(data)

    refused = _run("restore", str(damaged), "--state-dir", str(state_dir))

    assert refused.returncode == 1
    first = refused.stderr.splitlines()[0]
    assert first.startswith(f"error: {damaged}")
    assert "damaged" in first
    assert f"hint: nothing in {state_dir} was changed" in refused.stderr
    assert _files(state_dir) == before
    assert not list(state_dir.glob("replaced-*"))
    assert not list(state_dir.glob(".restore-*"))
    offline = _run("backup", str(source.backup.with_name("offline.tar.gz")), "--state-dir",
                   str(state_dir))  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    assert f"backed up {held} Models" in offline.stdout


def test_a_state_from_before_schema_versions_is_adopted_whole(source: Source) -> None:
    """The backed-up platform's state, made by the control API (Models, rollouts, keys,
    quotas, a git source), as the platform left it before versions were kept: version 0."""
    source.platform.stop()
    db = sqlite3.connect(source.platform.state_dir / "state.db")
    db.execute("PRAGMA user_version = 0")
    db.close()
    source.platform.start()
    _check_restored(source.platform, source)
    db = sqlite3.connect(source.platform.state_dir / "state.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_up_refuses_a_state_of_a_newer_schema(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    db = sqlite3.connect(state_dir / "state.db")
    db.execute("PRAGMA user_version = 99")
    db.close()
    started = _run("up", "--state-dir", str(state_dir), "--port", str(free_port()),
                   "--gateway-port", str(free_port()))  # fmt: skip
    assert started.returncode == 1
    assert f"has schema version 99, newer than this modelplane's {SCHEMA_VERSION}" in started.stderr
