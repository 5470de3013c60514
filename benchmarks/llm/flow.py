"""Fair flow control: an interactive tenant's time to first token alone, and while a batch
tenant floods the same saturated model, with the gateway's waiting room and without it.

    python -m benchmarks.llm.flow [--requests 40] [--flooders 8]

The tiny chat model of benchmarks/llm/run.py on one replica of two slots, on `modelplane up`.
The interactive tenant (namespace ``default``) sends short streamed chats one after another;
the batch tenant (namespace ``batch-team``, whose quota sets ``priority: batch``) keeps
``flooders`` longer chats in flight at once, each sent as the tenant with the
``X-Modelplane-Tenant`` header. Time to first token is measured at the interactive client. The
runs: the interactive tenant alone; under the flood with flow control (the default); the same
with one request allowed to wait in the replica beside its busy slots (``--engine-weights
max-waiting=1``); under the flood with flow control off (``--flow-max-waiting 0``: the flood
waits in the replica's own waiting list, first come first served).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from benchmarks.llm.run import summary, timed_stream
from benchmarks.platform.run import BENCH, Up, wait

ROOT = Path(__file__).resolve().parents[2]
TARGET = 1.2  # the interactive p90 under the flood, at most this much of its p90 alone
INTERACTIVE = {
    "model": "flow-chat",
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 16,
}
BATCH = {
    "model": "flow-chat",
    "messages": [{"role": "user", "content": "Tell me a long story about the sea."}],
    "max_tokens": 96,
}


def manifest(artifact: Path) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "flow-chat"},
        "spec": {
            "source": {"uri": artifact.as_uri()},
            "format": "llamacpp",
            "task": "chat",
            "resources": {"cpu": "1"},
            "scaling": {"minReplicas": 1, "maxReplicas": 1},
            "rollout": {"strategy": "Immediate"},
            "runtime": {"parameters": {"parallel": "2", "maxWaiting": "64"}},
        },
    }


async def interactive(up: Up, requests: int, flooders: int) -> dict[str, Any]:
    """``requests`` interactive chats one after another, while ``flooders`` batch chats are in
    flight throughout (none: alone)."""
    url = f"{up.gateway}/v1/chat/completions"
    done = asyncio.Event()
    batch_answers = 0

    async def flood(client: httpx.AsyncClient) -> None:
        nonlocal batch_answers
        while not done.is_set():
            reply = await client.post(
                url, json=BATCH, headers={"X-Modelplane-Tenant": "batch-team"}
            )
            batch_answers += reply.status_code == 200

    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=64)) as client:
        flooding = [asyncio.create_task(flood(client)) for _ in range(flooders)]
        await asyncio.sleep(2.0 if flooders else 0)  # the flood saturates the model first
        await timed_stream(client, url, INTERACTIVE)  # warm
        firsts = []
        for _ in range(requests):
            first, *_ = await timed_stream(client, url, INTERACTIVE)
            firsts.append(first)
            await asyncio.sleep(0.1)
        done.set()
        await asyncio.gather(*flooding)
    return {**summary(firsts), "batch_answers": batch_answers}


def run(work: Path, requests: int, flooders: int) -> dict[str, Any]:
    script = ROOT / "examples" / "llm" / "make_models.py"
    subprocess.run([sys.executable, str(script), "--out", str(work)], check=True)
    artifact = work / "tiny-chat.gguf"
    found: dict[str, Any] = {}
    runs = {
        "with flow control": (),
        "with flow control, one waiting at the replica": ("--engine-weights", "max-waiting=1"),
        "flow control off": ("--flow-max-waiting", "0"),
    }
    for name, options in runs.items():
        up = Up(work / f"state-{len(found)}", *options)
        try:
            up.apply(manifest(artifact))
            wait(lambda up=up: up.ready("flow-chat"), 120)
            quota = {"priority": "batch"}
            httpx.put(f"{up.api}/quotas/batch-team", json=quota).raise_for_status()
            if not found:
                found["alone"] = asyncio.run(interactive(up, requests, 0))
            found[f"flooded, {name}"] = asyncio.run(interactive(up, requests, flooders))
        finally:
            up.stop()
    alone = found["alone"]["ttft_p90_ms"]
    for name in runs:
        found[f"flooded, {name}"]["p90_vs_alone"] = round(
            found[f"flooded, {name}"]["ttft_p90_ms"] / alone, 2
        )
    found["target_p90_vs_alone"] = TARGET
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--flooders", type=int, default=8)
    args = parser.parse_args()
    BENCH.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        found = run(Path(tmp), args.requests, args.flooders)
    print(json.dumps(found, indent=1))
    (BENCH / "llm-flow.json").write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
