"""Scale to zero and back, with requests held by the gateway during the cold start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.platform.conftest import Platform, manifest, wait_for

SETOSA = [5.1, 3.5, 1.4, 0.2]


def test_idle_model_scales_to_zero_and_held_requests_all_succeed(
    platform: Platform, iris_dir: Path, tmp_path: Path
) -> None:
    extra = "  scaling: {minReplicas: 0, maxReplicas: 2, scaleToZeroAfterSeconds: 1}\n"
    platform.cli(
        "apply", "-f", str(manifest(tmp_path / "m.yaml", "sleepy", iris_dir / "model.onnx", extra))
    )
    platform.wait_condition("sleepy", "Ready", "True", "ScaledToZero", timeout=60)
    wait_for(lambda: not platform.replica_pids("sleepy-r1"), "no replica process", 30)

    async def burst() -> list[int]:
        body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": SETOSA}]}
        async with httpx.AsyncClient(timeout=60) as client:
            url = f"{platform.gateway}/v2/models/sleepy/infer"
            replies = await asyncio.gather(*(client.post(url, json=body) for _ in range(100)))
        return [r.status_code for r in replies]

    assert asyncio.run(burst()) == [200] * 100
    assert platform.replica_pids("sleepy-r1")
    metrics = httpx.get(f"{platform.gateway}/metrics").text
    series = 'model="default/sleepy",outcome="success",revision="sleepy-r1"'
    assert f"modelplane_gateway_requests_total{{{series}}} 100.0" in metrics
