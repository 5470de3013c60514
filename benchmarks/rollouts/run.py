"""Figures of canary rollouts under load: a good revision promoted 0→10→50→100% with no failed
request, bad revisions (erroring, slow, predicting differently) rolled back at the first step that
can judge them, the 50/50 split, and what shadow mirroring costs the client's p50 latency.

    python -m benchmarks.rollouts.run [--only good bad split mirroring]

Everything runs on loopback against a real ``modelplane up``, two replicas per revision, with
the embedded metric source (the gateway's own per-revision counters).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from benchmarks.platform.run import (
    API,
    BENCH,
    BODY,
    ROOT,
    Up,
    model,
    replica_pids,
    run_figures,
    wait,
    wrk,
)

HERE = Path(__file__).resolve().parent
STEPS = [{"weight": 10, "pauseSeconds": 10}, {"weight": 50, "pauseSeconds": 10}]
TWO = {"minReplicas": 2, "maxReplicas": 2}
CONCURRENCY = 16
MIN_REQUESTS = 20_000


def canary(name: str, steps: list[dict[str, int]], **spec: Any) -> dict[str, Any]:
    analysis = {"minRequests": 200, **spec.pop("analysis", {})}
    rollout = {"strategy": "Canary", "steps": steps, "analysis": analysis}
    return model(name, {"scaling": TWO, "rollout": rollout, **spec})


def status(up: Up, name: str) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{up.api}{API}/{name}").json()["status"]
    return found


def phase(up: Up, name: str) -> str | None:
    rollout = status(up, name).get("rollout") or {}
    return rollout.get("phase")


def events(up: Up, name: str) -> list[str]:
    items = httpx.get(f"{up.api}{API}/{name}/events").json()["items"]
    return [f"{e['reason']}: {e['message']}" for e in items]


def serving(up: Up, name: str, revision: str) -> None:
    """Wait for a Ready model with both replicas of ``revision`` up."""
    wait(lambda: up.ready(name) and len(replica_pids(revision)) == 2, 90)


def delete(up: Up, name: str) -> None:
    httpx.delete(f"{up.api}{API}/{name}").raise_for_status()
    wait(lambda: not any(replica_pids(f"{name}-r{number}") for number in (1, 2, 3)), 60)


async def load(url: str, stop: asyncio.Event, tally: Counter[str]) -> None:
    """Closed-loop load until ``stop``: outcomes by status and answering revision."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def worker() -> None:
            while not stop.is_set():
                try:
                    async with session.post(
                        url, data=BODY, headers={"Content-Type": "application/json"}
                    ) as reply:
                        await reply.read()
                        revision = reply.headers.get("X-Modelplane-Revision", "-")
                        tally[f"{reply.status} {revision}"] += 1
                except aiohttp.ClientError as exc:
                    tally[type(exc).__name__] += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def release(up: Up, name: str, new: dict[str, Any], done: str) -> dict[str, Any]:
    """Under steady load, apply ``new`` and wait for the rollout to end in ``done``; the load
    goes on until the phase is reached and at least MIN_REQUESTS were sent."""
    tally: Counter[str] = Counter()

    async def scenario() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(load(f"{up.gateway}/v2/models/{name}/infer", stop, tally))
        await asyncio.sleep(3)
        applied = time.monotonic()
        await asyncio.to_thread(up.apply, new)
        decided = None
        deadline = applied + 240
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            if decided is None and await asyncio.to_thread(phase, up, name) == done:
                decided = time.monotonic()
            if decided is not None and tally.total() >= MIN_REQUESTS:
                break
        await asyncio.sleep(2)  # traffic after the decision, on what was decided
        stop.set()
        await task
        if decided is None:
            rollout = (await asyncio.to_thread(status, up, name)).get("rollout") or {}
            raise RuntimeError(f"{name}: no {done} within 240 s; rollout: {rollout}")
        return decided - applied

    seconds = asyncio.run(scenario())
    found = status(up, name)
    rollout = found.get("rollout") or {}
    analysis = rollout.get("lastAnalysis") or {}
    failed = {k: v for k, v in tally.items() if not k.startswith("200 ")}
    return {
        "requests": tally.total(),
        "failed": failed,
        "by_revision": dict(Counter({k.split()[1]: v for k, v in tally.items() if k[:3] == "200"})),
        "phase": rollout.get("phase"),
        "decided_at_step": rollout.get("step"),
        "seconds_to_decision": round(seconds, 1),
        "reason": analysis.get("message"),
        "failing_metrics": {
            m["name"]: [m.get("value"), m["threshold"]]
            for m in analysis.get("metrics", [])
            if not m["passed"]
        },
        "events": [e for e in events(up, name) if "Traffic" in e or "Rollout" in e or "Anal" in e],
    }


def good(up: Up) -> dict[str, Any]:
    up.apply(canary("good", STEPS))
    serving(up, "good", "good-r1")
    result = release(up, "good", canary("good", STEPS, batching={"maxBatchSize": 8}), "Promoted")
    delete(up, "good")
    return result


def bad(up: Up) -> dict[str, Any]:
    shuffled = BENCH / "iris-shuffled"
    subprocess.run(
        [sys.executable, str(ROOT / "examples/iris/train.py"), "--shuffle-labels", "--out",
         str(shuffled)],
        check=True, capture_output=True,
    )  # fmt: skip
    onnx = str(BENCH / "iris" / "model.onnx")
    variant = {"uri": (HERE / "variant.py").as_uri()}
    releases: dict[str, dict[str, Any]] = {
        "errors (20% of calls fail)": {
            "source": variant, "format": "python",
            "runtime": {"parameters": {"onnx": onnx, "failShare": "0.2"}},
        },
        "slow (+100 ms a call)": {
            "source": variant, "format": "python",
            "runtime": {"parameters": {"onnx": onnx, "delayMs": "100"}},
        },
        "shuffled labels": {"source": {"uri": (shuffled / "model.onnx").as_uri()}},
    }  # fmt: skip
    results = {}
    for index, (kind, spec) in enumerate(releases.items()):
        name = f"bad-{index}"
        up.apply(canary(name, STEPS))
        serving(up, name, f"{name}-r1")
        results[kind] = release(up, name, canary(name, STEPS, **spec), "RolledBack")
        delete(up, name)
    return results


def split(up: Up) -> dict[str, Any]:
    steps = [{"weight": 50, "pauseSeconds": 3600}]
    up.apply(canary("split", steps))
    serving(up, "split", "split-r1")
    up.apply(canary("split", steps, batching={"maxBatchSize": 8}))
    wait(lambda: any("split-r2 50%" in e for e in events(up, "split")), 90)
    counts: dict[str, Any] = {}
    with httpx.Client(timeout=30) as client:
        for total in (200, 2000):
            seen: Counter[str] = Counter()
            for _ in range(total):
                reply = client.post(f"{up.gateway}/v2/models/split/infer", content=BODY)
                seen[f"{reply.status_code} {reply.headers['X-Modelplane-Revision']}"] += 1
            counts[str(total)] = dict(seen)
    delete(up, "split")
    return counts


def mirroring(up: Up) -> dict[str, Any]:
    """The client's latency with a canary on trial, mirroring 0%, 10% (the default) or 100% of
    the stable revision's requests; arms alternate, three rounds each."""
    steps = [{"weight": 1, "pauseSeconds": 3600}]

    def spec(percent: int, **extra: Any) -> dict[str, Any]:
        return canary("mirror", steps, analysis={"shadowPercent": percent}, **extra)

    up.apply(spec(0))
    serving(up, "mirror", "mirror-r1")
    up.apply(spec(0, batching={"maxBatchSize": 8}))
    wait(lambda: any("mirror-r2 1%" in e for e in events(up, "mirror")), 90)
    url = f"{up.gateway}/v2/models/mirror/infer"
    runs: dict[str, list[dict[str, float]]] = {}
    for _ in range(3):
        for percent in (0, 10, 100):
            up.apply(spec(percent, batching={"maxBatchSize": 8}))  # not a serving field
            time.sleep(1.5)
            for concurrency in (1, 8):
                runs.setdefault(f"shadow {percent}% c={concurrency}", []).append(
                    wrk(url, concurrency, seconds=10)
                )
    revisions = httpx.get(f"{up.api}{API}/mirror/revisions").json()["items"]
    delete(up, "mirror")
    summary: dict[str, Any] = {
        arm: {
            "p50_ms": statistics.median(r["p50_ms"] for r in found),
            "p99_ms": statistics.median(r["p99_ms"] for r in found),
            "rps": statistics.median(r["rps"] for r in found),
            "errors": sum(r["errors"] for r in found),
        }
        for arm, found in runs.items()
    }
    for concurrency in (1, 8):
        off = summary[f"shadow 0% c={concurrency}"]["p50_ms"]
        for percent in (10, 100):
            on = summary[f"shadow {percent}% c={concurrency}"]["p50_ms"]
            summary[f"p50 cost {percent}% c={concurrency}"] = on / off - 1
    summary["revisions"] = len(revisions)
    return summary


FIGURES = {"good": good, "bad": bad, "split": split, "mirroring": mirroring}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(FIGURES), default=list(FIGURES))
    parser.add_argument(
        "--up-option", action="append", default=[], help="an option for `modelplane up` (repeat)"
    )
    args = parser.parse_args()
    run_figures(FIGURES, args.only, "rollouts-results.json", args.up_option)


if __name__ == "__main__":
    main()
