"""Figures of LLM serving on CPU: tokens/s and time to first token through the gateway against
straight at the replica, and prefix-aware balancing against round robin and least outstanding on
a multi-turn chat workload.

    python -m benchmarks.llm.run [--only engine prefix flow] [--conversations 12] [--turns 4]

Everything runs on loopback against real `modelplane up` processes serving GGUF models through
llama.cpp. The models are made by examples/llm/make_models.py: the tiny example for the engine
figure, and a larger one (embedding 256, 4 layers) for the routing figure, so that reading a
prompt costs what a cache can save. Time to first token is measured at the client, from sending
the request to the first streamed content.

The routing workload is chat about documents: each conversation opens with a short shared system
prompt and a long document of its own (about a thousand tokens), then asks short follow-ups;
twelve conversations, two at a time, over two replicas whose prompt caches (48 MiB each) hold
about half of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.platform.run import API, BENCH, Up, replica_pids, replica_port, wait

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "llm"))
import make_hf_model  # noqa: E402
import make_models  # noqa: E402

POLICIES = ("round-robin", "least-outstanding", "prefix")
SYSTEM = "You are the assistant of a platform that serves models. Answer briefly."
WORDS = make_models.CORPUS.split()


def document(index: int, words: int = 500) -> str:
    """A conversation's own long context (a document it is about), different for each."""
    rng = random.Random(index)  # noqa: S311 - a reproducible workload
    return " ".join(rng.choice(WORDS) for _ in range(words))


def chat_model(name: str, artifact: Path, replicas: int, cache_mib: int) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {
            "source": {"uri": artifact.as_uri()},
            "format": "llamacpp",
            "task": "chat",
            "resources": {"cpu": "1"},
            "scaling": {"minReplicas": replicas, "maxReplicas": replicas},
            "rollout": {"strategy": "Immediate"},
            "runtime": {"parameters": {"promptCacheMiB": str(cache_mib)}},
            "generation": {"maxTokens": 512},
        },
    }


async def timed_stream(
    client: httpx.AsyncClient, url: str, body: dict[str, Any]
) -> tuple[float, float, int, str]:
    """(time to first token, seconds of the whole answer, tokens, text) of one streamed chat."""
    started = time.perf_counter()
    first = 0.0
    pieces: list[str] = []
    tokens = 0
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    async with client.stream("POST", url, json=body) as reply:
        reply.raise_for_status()
        async for line in reply.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            for choice in event.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content and not first:
                    first = time.perf_counter() - started
                pieces.append(content or "")
    # An engine that sends no usage in streams (llama.cpp's server): one chunk per token.
    tokens = tokens or sum(1 for piece in pieces if piece)
    return first, time.perf_counter() - started, tokens, "".join(pieces)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(ttfts: list[float]) -> dict[str, float]:
    return {
        "requests": len(ttfts),
        "ttft_mean_ms": round(statistics.mean(ttfts) * 1000, 1),
        "ttft_p50_ms": round(percentile(ttfts, 0.5) * 1000, 1),
        "ttft_p90_ms": round(percentile(ttfts, 0.9) * 1000, 1),
    }


# -- engine: the tiny model, direct and through the gateway -------------------------------------


def engine(work: Path, external: bool = False) -> dict[str, Any]:
    """The tiny GGUF model on llama.cpp: in the runtime, or as llama.cpp's own server."""
    make = ROOT / "examples" / "llm" / "make_models.py"
    subprocess.run([sys.executable, str(make), "--out", str(work)], check=True, capture_output=True)
    document = chat_model("tiny-chat", work / "tiny-chat.gguf", replicas=1, cache_mib=0)
    if external:
        document["spec"]["engine"] = {"external": True}
    return direct_and_through_gateway(work, document)


def huggingface(work: Path) -> dict[str, Any]:
    """The tiny transformers model on CPU (benchmarks/llm/gpu_check.py runs it on CUDA)."""
    from benchmarks.llm.gpu_check import hf_model

    make_hf_model.write(work / "tiny-hf")
    return direct_and_through_gateway(work, hf_model(work / "tiny-hf", "cpu"))


def direct_and_through_gateway(
    work: Path, document: dict[str, Any], requests: int = 30, max_tokens: int = 256
) -> dict[str, Any]:
    """Time to first token and tokens/s of one chat model, straight at its one replica and
    through the gateway, alternating, on a fresh `modelplane up`."""
    name = document["metadata"]["name"]
    up = Up(work / "state")
    try:
        httpx.post(f"{up.api}{API}", json=document).raise_for_status()
        wait(lambda: up.ready(name), 300)
        (pid,) = replica_pids(f"{name}-r1")
        targets = {
            "direct": f"http://127.0.0.1:{replica_port(pid)}/v1/chat/completions",
            "gateway": f"{up.gateway}/v1/chat/completions",
        }
        body = {
            "model": name,
            "messages": [{"role": "user", "content": "Tell me a story about a small robot."}],
            "max_tokens": max_tokens,
            "temperature": 1.0,
            "seed": 3,
        }
        found: dict[str, Any] = {}

        async def measure(url: str) -> dict[str, Any]:
            async with httpx.AsyncClient(timeout=120) as client:
                await timed_stream(client, url, body)  # warm up
                runs = [await timed_stream(client, url, body) for _ in range(requests)]
            decode = [tokens / (total - first) for first, total, tokens, _ in runs if tokens > 1]
            return {
                **summary([first for first, _, _, _ in runs]),
                "tokens_per_second": round(statistics.median(decode)),
                "tokens_per_answer": runs[0][2],
            }

        for _ in range(2):  # alternate, keep the second round: both warm
            for target, url in targets.items():
                found[target] = asyncio.run(measure(url))
        found["gateway_over_direct_ttft"] = round(
            found["gateway"]["ttft_p50_ms"] / found["direct"]["ttft_p50_ms"], 2
        )
        found["gateway_over_direct_tokens_per_second"] = round(
            found["gateway"]["tokens_per_second"] / found["direct"]["tokens_per_second"], 2
        )
        return found
    finally:
        up.stop()


# -- prefix: balancing policies on a multi-turn chat workload -------------------------------------


@dataclass
class Conversations:
    """The time to first token of each turn of a run of conversations, by turn, and the
    completion tokens they made."""

    by_turn: list[list[float]]
    tokens: int = 0


async def conversations(
    gateway: str,
    count: int,
    turns: int,
    parallel: int,
    system: str = SYSTEM,
    words: int = 500,
    max_tokens: int = 16,
) -> Conversations:
    """``count`` conversations of ``turns`` turns each, ``parallel`` at a time, each about a
    document of ``words`` words after the ``system`` prompt."""
    url = f"{gateway}/v1/chat/completions"
    found = Conversations([[] for _ in range(turns)])
    gate = asyncio.Semaphore(parallel)

    async def one(index: int, client: httpx.AsyncClient) -> None:
        async with gate:
            history = [
                {"role": "system", "content": system},
                {"role": "user", "content": f"Read this, then answer: {document(index, words)}"},
            ]
            for turn in range(turns):
                body = {"model": "chat", "messages": history, "max_tokens": max_tokens,
                        "seed": index}  # fmt: skip
                first, _, tokens, text = await timed_stream(client, url, body)
                found.by_turn[turn].append(first)
                found.tokens += tokens
                history += [
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": f"And then, in turn {turn + 2}?"},
                ]

    async with httpx.AsyncClient(timeout=300) as client:
        await asyncio.gather(*(one(i, client) for i in range(count)))
    return found


def prefix(work: Path, count: int, turns: int, replicas: int = 2) -> dict[str, Any]:
    artifact = work / "chat-256x4.gguf"
    make_models.write(artifact, size=make_models.Size(embedding=256, layers=4))
    found: dict[str, Any] = {}
    for policy in POLICIES:
        up = Up(work / f"state-{policy}", "--balancing", policy)
        try:
            document = chat_model("chat", artifact, replicas=replicas, cache_mib=48)
            httpx.post(f"{up.api}{API}", json=document).raise_for_status()
            wait(lambda up=up: up.ready("chat"), 120)
            by_turn = asyncio.run(conversations(up.gateway, count, turns, replicas)).by_turn
            later = [t for turn in by_turn[1:] for t in turn]
            found[policy] = {
                "first_turns": summary(by_turn[0]),
                "later_turns": summary(later),
            }
        finally:
            up.stop()
    base = found["round-robin"]["later_turns"]["ttft_mean_ms"]
    for policy in POLICIES:
        found[policy]["later_turns_mean_vs_round_robin"] = round(
            found[policy]["later_turns"]["ttft_mean_ms"] / base, 2
        )
    return found


FIGURES: dict[str, Callable[[Path, argparse.Namespace], Any]] = {
    "engine": lambda work, args: engine(work),
    "engine-server": lambda work, args: engine(work, external=True),
    "huggingface": lambda work, args: huggingface(work),
    "prefix": lambda work, args: prefix(work, args.conversations, args.turns),
    "flow": lambda work, args: flow(work),
}


def flow(work: Path) -> dict[str, Any]:
    """An interactive tenant's time to first token alone and under a batch tenant's flood
    (benchmarks/llm/flow.py)."""
    from benchmarks.llm import flow

    return flow.run(work, requests=40, flooders=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(FIGURES), default=list(FIGURES))
    parser.add_argument("--conversations", type=int, default=12)
    parser.add_argument("--turns", type=int, default=4)
    args = parser.parse_args()
    BENCH.mkdir(exist_ok=True)
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            print(f"== {name}", flush=True)
            work = Path(tmp) / name
            work.mkdir()
            found[name] = FIGURES[name](work, args)
            print(json.dumps(found[name], indent=1), flush=True)
    (BENCH / "llm-results.json").write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
