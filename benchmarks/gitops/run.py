"""Figures of GitOps in embedded mode: a repository of many Models synced from scratch and with
one change, the control plane's idle cost with them all, and the time from `git push` to the new
revision answering through the gateway, with the push webhook and with polling.

    python -m benchmarks.gitops.run [--only bulk push] [--models 500] [--rounds 5]

Everything runs on loopback against a real ``modelplane up`` and real git repositories (the
platform follows a bare repository that a working clone pushes to, as it would a git host).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.platform.run import API, BENCH, ROOT, Up, wait

TRAIN = ROOT / "examples" / "iris" / "train.py"
MODEL = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata: {{name: {name}}}
spec:
  source: {{uri: '{uri}'}}
  format: onnx
  task: classification
  batching: {{maxBatchSize: {batch}}}
  scaling: {scaling}
  rollout: {{strategy: Immediate}}
"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@example.com",
         *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def origin_and_clone(root: Path) -> tuple[Path, Path]:
    """A bare repository the platform follows, and a working clone that pushes to it."""
    origin, work = root / "origin.git", root / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    subprocess.run(["git", "clone", "-q", str(origin), str(work)], check=True,
                   capture_output=True)  # fmt: skip
    git(work, "checkout", "-q", "-b", "main")
    return origin, work


# Many Models: none starts a replica until asked (a new revision otherwise starts one to prove
# it loads), so the figures are the control plane's, not those of hundreds of processes.
DORMANT = "{minReplicas: 0, scaleToZeroAfterSeconds: 0}"
SERVING = "{minReplicas: 1}"


def write(work: Path, name: str, batch: int = 32, scaling: str = DORMANT) -> None:
    uri = (BENCH / "iris" / "model.onnx").as_uri()
    path = work / "models" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MODEL.format(name=name, uri=uri, batch=batch, scaling=scaling))


def push(work: Path, message: str) -> str:
    git(work, "add", "-A")
    git(work, "commit", "-qm", message)
    git(work, "push", "-q", "origin", "main")
    return git(work, "rev-parse", "HEAD")


def sources(up: Up) -> dict[str, dict[str, Any]]:
    items = httpx.get(f"{up.api}/gitops", timeout=30).json()["items"]
    return {item["name"]: item for item in items}


def applied(up: Up, source: str, commit: str) -> bool:
    status = sources(up).get(source, {})
    return status.get("lastAppliedCommit") == commit and status.get("result") == "Applied"


def all_reconciled(up: Up, count: int) -> bool:
    """Every Model seen by the controller at its current generation."""
    items = httpx.get(f"{up.api}/apis/modelplane.io/v1alpha1/models", timeout=60).json()["items"]
    generations = [
        ((m.get("status") or {}).get("observedGeneration"), m["metadata"]["generation"])
        for m in items
    ]
    return len(items) == count and all(seen == current for seen, current in generations)


def until(check: Any, timeout: float, every: float = 0.25) -> None:
    """``wait`` for a check too costly to run every 20 ms."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(every)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bulk(root: Path, count: int) -> dict[str, Any]:
    """``count`` Models in one commit, synced by a platform started on it, then one change."""
    origin, work = origin_and_clone(root)
    for index in range(count):
        write(work, f"m{index:04d}")
    first = push(work, f"{count} models")
    started = time.monotonic()
    up = Up(root / "state", "--git", origin.as_uri(), "--git-path", "models",
            "--git-interval", "600")  # fmt: skip
    try:
        wait(lambda: applied(up, "git", first), 600)
        synced = time.monotonic() - started
        until(lambda: all_reconciled(up, count), 600)
        reconciled = time.monotonic() - started

        idle_from = cpu_seconds(up.process.pid)
        time.sleep(10)
        idle_cpu = (cpu_seconds(up.process.pid) - idle_from) / 10

        write(work, "m0007", batch=8)
        changed = push(work, "one change")
        pushed = time.monotonic()
        httpx.post(f"{up.api}/gitops/webhook", timeout=30).raise_for_status()
        wait(lambda: applied(up, "git", changed), 600)
        change_applied = time.monotonic() - pushed
        wait(lambda: _revision_count(up, "m0007") == 2, 600)
        change_revision = time.monotonic() - pushed
    finally:
        up.stop()
    return {
        "models": count,
        "seconds_from_start_to_applied": round(synced, 2),
        "seconds_from_start_to_all_reconciled": round(reconciled, 2),
        "idle_cpu_share_of_one_core": round(idle_cpu, 3),
        "one_change_seconds_to_applied": round(change_applied, 2),
        "one_change_seconds_to_new_revision": round(change_revision, 2),
    }


def _revision_count(up: Up, name: str) -> int:
    reply = httpx.get(f"{up.api}{API}/{name}/revisions", timeout=30)
    return len(reply.json()["items"]) if reply.status_code == 200 else 0


def _answering(up: Up, name: str) -> str | None:
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4],
                        "data": [5.1, 3.5, 1.4, 0.2]}]}  # fmt: skip
    try:
        reply = httpx.post(f"{up.gateway}/v2/models/{name}/infer", json=body, timeout=30)
    except httpx.TransportError:
        return None
    return reply.headers.get("x-modelplane-revision") if reply.status_code == 200 else None


def push_to_traffic(root: Path, rounds: int, poll_interval: float) -> dict[str, Any]:
    """A served Model changed by a push; seconds until the gateway answers with the new
    revision: one source woken by the webhook, one polling every ``poll_interval`` seconds."""
    root.mkdir(parents=True, exist_ok=True)
    phase = random.Random(7)  # noqa: S311 - timing jitter, not secrets
    up = Up(root / "state")
    found: dict[str, Any] = {}
    try:
        for source, interval, hook in (("hooked", 600.0, True), ("polled", poll_interval, False)):
            origin, work = origin_and_clone(root / source)
            name = f"live-{source}"
            write(work, name, scaling=SERVING)
            first = push(work, "serve")
            body = {"name": source, "url": origin.as_uri(), "path": "models",
                    "interval": interval}  # fmt: skip
            httpx.post(f"{up.api}/gitops", json=body, timeout=30).raise_for_status()
            wait(lambda s=source, c=first: applied(up, s, c), 120)  # type: ignore[misc]
            wait(lambda n=name: _answering(up, n) == f"{n}-r1", 120)  # type: ignore[misc]
            seconds, to_applied = [], []
            for index in range(rounds):
                write(work, name, batch=8 + index, scaling=SERVING)
                # A push comes at any moment of the polling cycle, not just after the last sync.
                time.sleep(phase.uniform(0, poll_interval))
                started = time.monotonic()
                commit = push(work, f"batch {8 + index}")
                if hook:
                    httpx.post(f"{up.api}/gitops/{source}/sync", timeout=30).raise_for_status()
                wait(lambda s=source, c=commit: applied(up, s, c), 120)  # type: ignore[misc]
                to_applied.append(time.monotonic() - started)
                wanted = f"{name}-r{index + 2}"
                wait(lambda n=name, w=wanted: _answering(up, n) == w, 180)  # type: ignore[misc]
                seconds.append(time.monotonic() - started)
            found["webhook" if hook else f"polling every {poll_interval:g} s"] = {
                "rounds": rounds,
                "median_seconds_to_applied": round(statistics.median(to_applied), 2),
                "median_seconds_to_traffic": round(statistics.median(seconds), 2),
                "max_seconds_to_traffic": round(max(seconds), 2),
                "each_to_traffic": [round(s, 2) for s in seconds],
            }
    finally:
        up.stop()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=["bulk", "push"], default=["bulk", "push"])
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    args = parser.parse_args()
    BENCH.mkdir(exist_ok=True)
    subprocess.run([sys.executable, str(TRAIN), "--out", str(BENCH / "iris")], check=True,
                   capture_output=True)  # fmt: skip
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "bulk" in args.only:
            print("== bulk", flush=True)
            results["bulk"] = bulk(Path(tmp) / "bulk", args.models)
            print(json.dumps(results["bulk"], indent=1), flush=True)
        if "push" in args.only:
            print("== push", flush=True)
            results["push"] = push_to_traffic(Path(tmp) / "push", args.rounds, args.poll_interval)
            print(json.dumps(results["push"], indent=1), flush=True)
    (BENCH / "gitops-results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
