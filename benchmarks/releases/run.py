"""Release figures against ground truth: a scripted history of two teams' releases (good ones,
some from commits made earlier, bad ones rolled back, an abort, an outage undone) played on a real
``modelplane up``; the DORA figures the platform computes must equal what the script knows it
did. Then what the figures cost: the report and the /metrics scrape at this size, and the
computation alone at 1,000 to 100,000 releases.

    python -m benchmarks.releases.run

The platform has no clock to compress: the script runs in real time, with short canary steps,
and compares durations to what it measured itself (within the time it takes to see a change).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from modelplane.api.releases import Mark, Milestone, RevisionHistory
from modelplane.apiserver.releases import release_report
from modelplane.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / ".bench"
MODELS = ROOT / "tests" / "runtime" / "models"
FLAKY = (MODELS / "flaky.py").as_uri()
SLOW_LOAD = (MODELS / "slow_load.py").as_uri()  # takes its `delay` to load
API = "/apis/modelplane.io/v1alpha1"
RELEASES = "/apis/releases.modelplane.io/v1alpha1"
ROW = [5.1, 3.5, 1.4, 0.2]
BODY = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": ROW}]}
TOLERANCE_SECONDS = 2.0  # how late the script may see a promotion the platform recorded


@dataclass
class Truth:
    """What the script did to one Model, and when (its own clock)."""

    outcomes: dict[str, str] = field(default_factory=dict)  # revision -> outcome
    leads: list[float] = field(default_factory=list)  # seconds, promoted releases
    restores: list[float] = field(default_factory=list)  # seconds, failed after traffic


def manifest(
    namespace: str, name: str, *, fail: bool, batch: int, commit: str = "", slow: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if commit:
        meta["annotations"] = {"modelplane.io/commit-time": commit}
    return {
        "apiVersion": "modelplane.io/v1alpha1", "kind": "Model", "metadata": meta,
        "spec": {
            "source": {"uri": SLOW_LOAD if slow else FLAKY}, "format": "python",
            "task": "classification",
            "runtime": {"parameters": {"fail": str(fail).lower(), "delay": "30"}},
            "batching": {"maxBatchSize": batch},
            "rollout": {"steps": [{"weight": 50, "pauseSeconds": 1}],
                        "analysis": {"minRequests": 10, "maxLatencyP99Ms": 2000}},
        },
    }  # fmt: skip


class Platform:
    def __init__(self, state: Path) -> None:
        self.port, self.gateway_port = free_port(), free_port()
        self.log = (state.parent / "up.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelplane", "up", "--state-dir", str(state),
             "--port", str(self.port), "--gateway-port", str(self.gateway_port)],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.api = f"http://127.0.0.1:{self.port}"
        self.gateway = f"http://127.0.0.1:{self.gateway_port}"
        until(lambda: _ok(f"{self.api}/healthz"), 30, "the control API")

    def apply(self, document: dict[str, Any]) -> None:
        meta = document["metadata"]
        path = f"{self.api}{API}/namespaces/{meta['namespace']}/models"
        if httpx.get(f"{path}/{meta['name']}").status_code == 404:
            httpx.post(path, json=document).raise_for_status()
        else:
            httpx.put(f"{path}/{meta['name']}", json=document).raise_for_status()

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        found = httpx.get(f"{self.api}{API}/namespaces/{namespace}/models/{name}").json()
        return dict(found.get("status") or {})

    def cli(self, *args: str) -> None:
        env = {**os.environ, "MODELPLANE_SERVER": self.api}
        subprocess.run([sys.executable, "-m", "modelplane", *args], env=env, check=True,
                       capture_output=True, timeout=60)  # fmt: skip

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` every 50 ms; the time it first held (time.time())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.time()
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def load(url: str) -> Iterator[None]:
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                client.post(url, json=BODY)

    workers = [threading.Thread(target=run) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join()


class Team:
    """One namespace's Model, released by script; ``truth`` is what it did."""

    def __init__(self, platform: Platform, namespace: str) -> None:
        self.platform, self.namespace, self.name = platform, namespace, "scorer"
        self.truth, self.number, self.batch = Truth(), 0, 1

    @property
    def revision(self) -> str:
        return f"{self.name}-r{self.number}"

    def _phase_is(self, phase: str, revision: str) -> Callable[[], bool]:
        def check() -> bool:
            status = self.platform.status(self.namespace, self.name)
            at = "stableRevision" if phase == "Promoted" else "canaryRevision"
            rollout = status.get("rollout") or {}
            first = phase == "Promoted" and revision.endswith("-r1")
            return status.get(at) == revision and (first or rollout.get("phase") == phase)

        return check

    def _apply(self, *, fail: bool, commit_ago: float = 0.0, slow: bool = False) -> float:
        self.number += 1
        self.batch += 1
        made = time.time()
        commit = ""
        if commit_ago:
            made -= commit_ago
            commit = datetime.fromtimestamp(made, UTC).isoformat()
        self.platform.apply(manifest(self.namespace, self.name, fail=fail, batch=self.batch,
                                     commit=commit, slow=slow))  # fmt: skip
        return made

    def good(self, commit_ago: float = 0.0) -> None:
        started = self._apply(fail=False, commit_ago=commit_ago)
        promoted = until(self._phase_is("Promoted", self.revision), 120, f"{self.revision}")
        self.truth.outcomes[self.revision] = "Promoted"
        self.truth.leads.append(promoted - started)

    def bad(self) -> None:
        self._apply(fail=True)
        traffic = until(lambda: self._traffic(self.revision) > 0, 120, "canary traffic")
        back = until(self._phase_is("RolledBack", self.revision), 120, f"{self.revision} back")
        self.truth.outcomes[self.revision] = "RolledBack"
        self.truth.restores.append(back - traffic)

    def aborted(self) -> None:
        """Aborted while its replica still loads: it never took traffic."""
        self._apply(fail=False, slow=True)
        self.platform.cli("rollout", "abort", self.name, "-n", self.namespace)
        until(self._phase_is("RolledBack", self.revision), 60, f"{self.revision} aborted")
        self.truth.outcomes[self.revision] = "Aborted"

    def regretted(self) -> None:
        """A release promoted, then taken back by ``modelplane rollout undo``: it failed."""
        started = self._apply(fail=False)
        promoted = until(self._phase_is("Promoted", self.revision), 120, f"{self.revision}")
        self.truth.leads.append(promoted - started)
        regretted, undone_at = self.revision, time.time()
        self.platform.cli("rollout", "undo", self.name, "-n", self.namespace)
        self.number += 1
        restored = until(self._phase_is("Promoted", self.revision), 120, f"{self.revision}")
        self.truth.outcomes[regretted] = "Undone"
        self.truth.outcomes[self.revision] = "Promoted"
        self.truth.restores.append(restored - promoted)
        self.truth.leads.append(restored - undone_at)

    def _traffic(self, revision: str) -> int:
        status = self.platform.status(self.namespace, self.name)
        return next((r.get("traffic", 0) for r in status.get("revisions", [])
                     if r["name"] == revision), 0)  # fmt: skip


def play(platform: Platform) -> dict[str, Truth]:
    """The script: team-a releases often and well, team-b breaks things."""
    teams = {ns: Team(platform, ns) for ns in ("team-a", "team-b")}
    for team in teams.values():
        with load(f"{platform.gateway}/v2/models/{team.namespace}/{team.name}/infer"):
            team.good()
            if team.namespace == "team-a":
                team.good(commit_ago=600)
                team.good(commit_ago=1800)
                team.bad()
                team.good(commit_ago=300)
            else:
                team.bad()
                team.aborted()
                team.regretted()
                team.bad()
                team.good(commit_ago=3600)
    return {ns: team.truth for ns, team in teams.items()}


def compare(platform: Platform, truths: dict[str, Truth]) -> list[dict[str, Any]]:
    report = httpx.get(f"{platform.api}{RELEASES}/releases?since=1d").json()
    rows = []
    for team in report["teams"]:
        truth = truths[team["namespace"]]
        figures = team["summary"]
        got = {r["revision"]: r["outcome"] for r in report["items"]
               if r["namespace"] == team["namespace"]}  # fmt: skip
        finished = [o for o in truth.outcomes.values() if o != "Superseded"]
        failed = [o for o in finished if o in ("RolledBack", "Aborted", "Undone")]
        deployed = [o for o in finished if o in ("Promoted", "Undone")]
        theirs = [r for r in report["items"] if r["namespace"] == team["namespace"]]
        restores = [r["timeToRestoreSeconds"] for r in theirs if r["timeToRestoreSeconds"]]
        close = [
            abs(a - b) <= TOLERANCE_SECONDS
            for a, b in zip(sorted(restores), sorted(truth.restores), strict=False)
        ] + [abs(figures["leadTimeSeconds"] - statistics.median(truth.leads)) <= TOLERANCE_SECONDS]
        rows.append({
            "team": team["namespace"],
            "equal to the script": got == truth.outcomes and all(close)
            and len(restores) == len(truth.restores)
            and figures["deployments"] == len(deployed)
            and figures["changeFailureRate"] == len(failed) / len(finished),
            "outcomes equal": got == truth.outcomes,
            "deployments": (figures["deployments"], len(deployed)),
            "change failure rate": (figures["changeFailureRate"], len(failed) / len(finished)),
            "lead time median s": (figures["leadTimeSeconds"], statistics.median(truth.leads)),
            "time to restore median s": (figures["timeToRestoreSeconds"],
                                         statistics.median(truth.restores)),
            "restores": (sorted(restores), sorted(truth.restores)),
        })  # fmt: skip
    return rows


def cost(platform: Platform) -> dict[str, float]:
    """The report and a /metrics scrape at this history's size (median of 20, ms)."""

    def timed(url: str) -> float:
        took = []
        for _ in range(20):
            started = time.perf_counter()
            httpx.get(url).raise_for_status()
            took.append((time.perf_counter() - started) * 1000)
        return statistics.median(took)

    return {
        "report ms": timed(f"{platform.api}{RELEASES}/releases?since=30d"),
        "metrics scrape ms": timed(f"{platform.gateway}/metrics"),
    }


def synthetic(count: int) -> list[RevisionHistory]:
    """``count`` releases of 100 Models in 10 namespaces over 90 days, a fifth of them failed."""
    start = datetime(2026, 9, 1, tzinfo=UTC)
    found = []
    for i in range(count):
        namespace, model = f"team-{i % 10}", f"m{i % 100}"
        number = i // 100 + 1
        name = f"{model}-r{number}"
        created = start + timedelta(minutes=i * 90 * 24 * 60 / count)
        marks = [Mark(name, Milestone.TRAFFIC, created + timedelta(minutes=1))]
        if i % 5 == 4:
            marks.append(Mark(name, Milestone.ROLLED_BACK, created + timedelta(minutes=3),
                              "AnalysisFailed"))  # fmt: skip
        else:
            marks.append(Mark(name, Milestone.PROMOTED, created + timedelta(minutes=5)))
        found.append(
            RevisionHistory(namespace, model, name, number, f"d{i}", created, tuple(marks))
        )
    return found


def scale() -> list[dict[str, float]]:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    rows = []
    for count in (1_000, 10_000, 100_000):
        history = synthetic(count)
        started = time.process_time()
        report = release_report(history, now, timedelta(days=90))
        took = time.process_time() - started
        rows.append({"releases": count, "report CPU s": round(took, 3),
                     "CPU µs per release": round(took / count * 1e6, 1),
                     "deployments": report["summary"]["deployments"]})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    BENCH.mkdir(exist_ok=True)
    work = BENCH / "releases"
    subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir()
    platform = Platform(work / "state")
    try:
        truths = play(platform)
        rows = compare(platform, truths)
        spent = cost(platform)
    finally:
        platform.stop()
    results = {"teams": rows, "cost": spent, "scale": scale()}
    (BENCH / "releases-results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    if not all(row["equal to the script"] for row in rows):
        sys.exit("the platform's figures differ from the script's")


if __name__ == "__main__":
    main()
