"""Figures of per-tenant quotas at the gateway: the admitted rate when a tenant sends twice its
limit, and how much a tenant flooding at ten times its limit moves another tenant's p95 latency.

    python -m benchmarks.tenancy.run [--seconds 10] [--limit 50]

One real ``modelplane up`` on loopback, the iris model in two namespaces (one replica each).
Load is open-loop: requests are sent on a fixed schedule whatever the answers, as clients of a
shared platform do, so a flood does not slow itself down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from benchmarks.platform.run import BENCH, BODY, ROOT, Up, model, wait

NAMESPACED = "/apis/modelplane.io/v1alpha1/namespaces"
# The bucket starts full (one second of burst): the steady rate counts what was sent after it.
STEADY_AFTER = 2.0
STEADY = -1  # key of the steady-state admitted count in a statuses Counter


def serve(up: Up, namespace: str) -> None:
    document = model("scorer", {"scaling": {"minReplicas": 1, "maxReplicas": 1}})
    document["metadata"]["namespace"] = namespace
    httpx.post(f"{up.api}{NAMESPACED}/{namespace}/models", json=document).raise_for_status()

    def answering() -> bool:
        url = f"{up.gateway}/v2/models/{namespace}/scorer/infer"
        try:
            return httpx.post(url, content=BODY, timeout=10).status_code == 200
        except httpx.TransportError:
            return False

    wait(answering, 120)


async def paced(
    session: aiohttp.ClientSession, url: str, rate: float, seconds: float
) -> tuple[Counter[int], list[float]]:
    """``rate`` requests per second for ``seconds``, each sent on schedule: statuses, and the
    latencies of the answered ones."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    steady: Counter[int] = Counter()  # of the requests sent after the first STEADY_AFTER s

    async def one(late: bool) -> None:
        started = time.perf_counter()
        try:
            async with session.post(
                url, data=BODY, headers={"Content-Type": "application/json"}
            ) as reply:
                await reply.read()
                statuses[reply.status] += 1
                steady[reply.status] += late
                if reply.status == 200:
                    latencies.append(time.perf_counter() - started)
        except aiohttp.ClientError:
            statuses[0] += 1

    tasks = []
    start = time.perf_counter()
    for index in range(int(rate * seconds)):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index / rate >= STEADY_AFTER)))
    await asyncio.gather(*tasks)
    statuses[STEADY] = steady[200]
    return statuses, latencies


def p95(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=20)[-1] * 1000


async def scenario(up: Up, seconds: float, limit: float) -> dict[str, Any]:
    noisy = f"{up.gateway}/v2/models/team-noisy/scorer/infer"
    quiet = f"{up.gateway}/v2/models/team-quiet/scorer/infer"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await paced(session, quiet, 20, 2)  # warm-up
        statuses, _ = await paced(session, noisy, 2 * limit, seconds)
        admitted = statuses[200] / seconds
        steady_admitted = statuses.pop(STEADY) / (seconds - STEADY_AFTER)
        alone_statuses, alone = await paced(session, quiet, 20, seconds)
        flood = asyncio.create_task(paced(session, noisy, 10 * limit, seconds))
        shared_statuses, shared = await paced(session, quiet, 20, seconds)
        flood_statuses, _ = await flood
    for counted in (alone_statuses, shared_statuses, flood_statuses):
        counted.pop(STEADY, None)
    return {
        "limit_rps": limit,
        "sent_rps_at_2x": 2 * limit,
        "admitted_rps_at_2x": round(admitted, 2),
        "admitted_over_limit": round(admitted / limit, 3),
        "steady_admitted_rps_at_2x": round(steady_admitted, 2),
        "steady_admitted_over_limit": round(steady_admitted / limit, 3),
        "refused_429_at_2x": statuses[429],
        "quiet_tenant_p95_ms_alone": round(p95(alone), 2),
        "quiet_tenant_p95_ms_beside_10x_flood": round(p95(shared), 2),
        "p95_ratio": round(p95(shared) / p95(alone), 3),
        "quiet_tenant_statuses": {
            "alone": dict(alone_statuses),
            "beside_flood": dict(shared_statuses),
        },
        "flood_statuses": dict(flood_statuses),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--limit", type=float, default=50)
    args = parser.parse_args()
    BENCH.mkdir(exist_ok=True)
    subprocess.run(
        [sys.executable, str(ROOT / "examples/iris/train.py"), "--out", str(BENCH / "iris")],
        check=True, capture_output=True,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        up = Up(Path(tmp) / "state")
        try:
            serve(up, "team-noisy")
            serve(up, "team-quiet")
            httpx.put(f"{up.api}/quotas/team-noisy",
                      json={"requestsPerSecond": args.limit}).raise_for_status()  # fmt: skip
            found = asyncio.run(scenario(up, args.seconds, args.limit))
        finally:
            up.stop()
    print(json.dumps(found, indent=1))
    (BENCH / "tenancy-results.json").write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
