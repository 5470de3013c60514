"""Figures of per-tenant quotas at the gateway: the admitted rate when a tenant sends twice its
limit, and how much a tenant flooding at ten times its limit moves another tenant's p95 latency.

    python -m benchmarks.tenancy.run [--seconds 10] [--limit 50]

One real ``modelplane up`` on loopback, the iris model in two namespaces (one replica each).
Load is open-loop: requests are sent on a fixed schedule whatever the answers, as clients of a
shared platform do, so a flood does not slow itself down; vegeta sends it (``vegeta.py``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from benchmarks.platform.run import BENCH, BODY, ROOT, Up, model, wait
from benchmarks.tenancy.vegeta import VERSION, Hit, attack

NAMESPACED = "/apis/modelplane.io/v1alpha1/namespaces"
# The bucket starts full (one second of burst): the steady rate counts what was sent after it.
STEADY_AFTER = 2.0


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


def p95(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=20)[-1] * 1000


def answered(hits: list[Hit]) -> list[float]:
    return [hit.latency for hit in hits if hit.status == 200]


def beside(quiet: str, noisy: str, rate: float, seconds: float) -> tuple[list[Hit], list[Hit]]:
    """The quiet tenant's 20 requests/s while the noisy one sends ``rate``: both's hits."""
    with ThreadPoolExecutor(1) as pool:
        noise = pool.submit(attack, noisy, BODY, rate, seconds)
        heard = attack(quiet, BODY, 20, seconds)
        return heard, noise.result()


def scenario(up: Up, seconds: float, limit: float) -> dict[str, Any]:
    noisy = f"{up.gateway}/v2/models/team-noisy/scorer/infer"
    quiet = f"{up.gateway}/v2/models/team-quiet/scorer/infer"
    attack(quiet, BODY, 20, 2)  # warm-up
    at_2x = attack(noisy, BODY, 2 * limit, seconds)
    admitted = sum(hit.status == 200 for hit in at_2x) / seconds
    steady = [hit for hit in at_2x if hit.sent >= STEADY_AFTER]
    steady_admitted = sum(hit.status == 200 for hit in steady) / (seconds - STEADY_AFTER)
    alone = attack(quiet, BODY, 20, seconds)
    at_limit, _ = beside(quiet, noisy, limit, seconds)
    shared, flood = beside(quiet, noisy, 10 * limit, seconds)
    return {
        "load_generator": "vegeta " + VERSION,
        "limit_rps": limit,
        "sent_rps_at_2x": 2 * limit,
        "admitted_rps_at_2x": round(admitted, 2),
        "admitted_over_limit": round(admitted / limit, 3),
        "steady_admitted_rps_at_2x": round(steady_admitted, 2),
        "steady_admitted_over_limit": round(steady_admitted / limit, 3),
        "refused_429_at_2x": sum(hit.status == 429 for hit in at_2x),
        "quiet_tenant_p95_ms_alone": round(p95(answered(alone)), 2),
        "quiet_tenant_p95_ms_beside_10x_flood": round(p95(answered(shared)), 2),
        "p95_ratio": round(p95(answered(shared)) / p95(answered(alone)), 3),
        "quiet_tenant_p95_ms_beside_noisy_at_its_limit": round(p95(answered(at_limit)), 2),
        "p95_ratio_flood_over_at_limit": round(p95(answered(shared)) / p95(answered(at_limit)), 3),
        "quiet_tenant_statuses": {
            "alone": dict(Counter(hit.status for hit in alone)),
            "beside_at_limit": dict(Counter(hit.status for hit in at_limit)),
            "beside_flood": dict(Counter(hit.status for hit in shared)),
        },
        "flood_statuses": dict(Counter(hit.status for hit in flood)),
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
            found = scenario(up, args.seconds, args.limit)
        finally:
            up.stop()
    print(json.dumps(found, indent=1))
    (BENCH / "tenancy-results.json").write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
