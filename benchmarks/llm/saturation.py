"""Scaling out on saturation against scaling on in-flight requests: the tiny chat model with one
slot per replica under a steady load of concurrent streamed chats, on `modelplane up`.

    python -m benchmarks.llm.saturation [--clients 4] [--seconds 40]

The Model scales from one replica up to three, either on in-flight requests with the default
target (4 per replica) or on the replicas' waiting lists (target 1). For each, the figures are
how long after the load began each added replica was ready, and the time to first token over
the last half of the run, when the replica count has settled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.llm.run import summary, timed_stream
from benchmarks.platform.run import API, BENCH, Up, wait

ROOT = Path(__file__).resolve().parents[2]
SCALINGS: dict[str, dict[str, Any]] = {
    "inFlight": {},  # targetInFlight 4
    "waiting": {"metric": "waiting", "target": 1},
}
CHAT = {
    "model": "sat-chat",
    "messages": [{"role": "user", "content": "Tell me a long story about the sea."}],
    "max_tokens": 96,
}


def manifest(artifact: Path, scaling: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "sat-chat"},
        "spec": {
            "source": {"uri": artifact.as_uri()},
            "format": "llamacpp",
            "task": "chat",
            "resources": {"cpu": "1"},
            "scaling": {"minReplicas": 1, "maxReplicas": 3, **scaling},
            "runtime": {"parameters": {"parallel": "1", "maxWaiting": "64"}},
        },
    }


def ready_replicas(up: Up) -> int:
    status = httpx.get(f"{up.api}{API}/sat-chat").json().get("status") or {}
    return sum(r.get("readyReplicas", 0) for r in status.get("revisions") or [])


async def load(up: Up, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` streamed chats back to back for ``seconds``: when each replica came, and
    the time to first token of the chats sent in the second half."""
    started = time.monotonic()
    late: list[float] = []
    came: dict[int, float] = {}

    async def chat(client: httpx.AsyncClient) -> None:
        while (sent := time.monotonic()) - started < seconds:
            first, *_ = await timed_stream(client, f"{up.gateway}/v1/chat/completions", CHAT)
            if sent - started >= seconds / 2:
                late.append(first)

    async def watch() -> None:
        while time.monotonic() - started < seconds:
            count = await asyncio.to_thread(ready_replicas, up)
            came.setdefault(count, round(time.monotonic() - started, 1))
            await asyncio.sleep(0.25)

    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(watch(), *(chat(client) for _ in range(clients)))
    added = {f"replica {n} ready after s": at for n, at in sorted(came.items()) if n > 1}
    return {"most replicas ready": max(came), **added, **summary(late)}


def measure(artifact: Path, scaling: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as state:
        up = Up(Path(state) / "state")
        try:
            up.apply(manifest(artifact, scaling))
            wait(lambda: ready_replicas(up) == 1, 120)
            return asyncio.run(load(up, args.clients, args.seconds))
        finally:
            up.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=40)
    args = parser.parse_args()
    BENCH.mkdir(exist_ok=True)
    made = BENCH / "saturation-model"
    script = ROOT / "examples" / "llm" / "make_models.py"
    subprocess.run([sys.executable, str(script), "--out", str(made)], check=True)
    found = {name: measure(made / "tiny-chat.gguf", s, args) for name, s in SCALINGS.items()}
    print(json.dumps(found, indent=1))
    (BENCH / "llm-saturation.json").write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
