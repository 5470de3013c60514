"""Engine-aware balancing against today's prefix hash, least outstanding and round robin, on a
shared-prefix multi-turn chat workload over four replicas whose caches cannot hold every
conversation.

    python -m benchmarks.llm.routing [--conversations 48] [--turns 5] [--parallel 8] [--rounds 2]

Each policy gets a fresh `modelplane up --balancing <policy>` serving the same GGUF model (the
larger generated one of benchmarks/llm/run.py: embedding 256, 4 layers, so that reading a prompt
costs what a cache saves) on four replicas of two slots each, with a 4 MiB prompt cache beside
the slots. A conversation's state is about 3 MiB, so a replica keeps about three conversations and
the four together about twelve of the 48.

Every conversation opens with the same long system prompt (the shared prefix) and a document of
its own, then asks short follow-ups; ``parallel`` conversations run at once, each turn sent when
the one before is answered. Time to first token is measured at the client (from sending the
request to the first streamed content), over every turn; tokens/s is every completion token
over the wall time of the whole workload. This is the project's own load generator: inference-perf
0.7.0 needs Python 3.12 (the project's is 3.11) and guidellm 0.8.1, which installs (with torch,
about 6 GB), builds its synthetic and multi-turn prompts with a Hugging Face tokenizer, which the
generated GGUF models here do not have.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.llm.run import chat_model, conversations, document, make_models, percentile
from benchmarks.platform.run import API, BENCH, Up, wait

POLICIES = ("engine", "prefix", "least-outstanding", "round-robin")
REPLICAS, SLOTS, CACHE_MIB, ANSWER_TOKENS = 4, 2, 4, 32
SHARED = " ".join(
    [
        "You are the assistant of a platform that serves models.",
        "Answer in one or two sentences, and say when the documents do not tell.",
        *(f"Rule {n}: {document(10_000 + n, words=12)}." for n in range(12)),
    ]
)


def spec(artifact: Path) -> dict[str, Any]:
    document_ = chat_model("chat", artifact, replicas=REPLICAS, cache_mib=CACHE_MIB)
    document_["spec"]["runtime"]["parameters"]["parallel"] = str(SLOTS)
    return document_


@dataclass
class Measured:
    """What one or more runs of the workload measured under one policy."""

    firsts: list[float] = field(default_factory=list)  # time to first token of first turns
    later: list[float] = field(default_factory=list)  # of the turns after
    tokens: int = 0
    wall: float = 0.0

    def add(self, other: Measured) -> None:
        self.firsts += other.firsts
        self.later += other.later
        self.tokens += other.tokens
        self.wall += other.wall

    def summary(self) -> dict[str, Any]:
        every = self.firsts + self.later
        return {
            "requests": len(every),
            "ttft_p50_ms": _ms(percentile(every, 0.5)),
            "ttft_p90_ms": _ms(percentile(every, 0.9)),
            "first_turns_ttft_p50_ms": _ms(percentile(self.firsts, 0.5)),
            "first_turns_ttft_p90_ms": _ms(percentile(self.firsts, 0.9)),
            "later_turns_ttft_p50_ms": _ms(percentile(self.later, 0.5)),
            "later_turns_ttft_p90_ms": _ms(percentile(self.later, 0.9)),
            "tokens_per_second": round(self.tokens / self.wall, 1),
            "wall_seconds": round(self.wall, 1),
        }


async def workload(gateway: str, count: int, turns: int, parallel: int, into: Measured) -> None:
    """``count`` conversations of ``turns`` turns, ``parallel`` at a time, measured ``into``."""
    started = time.perf_counter()
    found = await conversations(gateway, count, turns, parallel, SHARED, 300, ANSWER_TOKENS)
    into.wall += time.perf_counter() - started
    into.firsts += found.by_turn[0]
    into.later += [ttft for turn in found.by_turn[1:] for ttft in turn]
    into.tokens += found.tokens


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def all_ready(up: Up) -> bool:
    revisions = httpx.get(f"{up.api}{API}/chat").json()["status"].get("revisions", [])
    return bool(revisions) and revisions[0].get("readyReplicas") == REPLICAS


def run(
    work: Path, count: int, turns: int, parallel: int, rounds: int, policies: tuple[str, ...]
) -> dict[str, Any]:
    """Every policy in turn, ``rounds`` times over (each time on a fresh platform, so that load
    from other work on the machine falls on all of them alike); the rounds pooled."""
    artifact = work / "chat-256x4.gguf"
    make_models.write(artifact, size=make_models.Size(embedding=256, layers=4))
    measured = {policy: Measured() for policy in policies}
    for number in range(rounds):
        for policy in policies:
            up = Up(work / f"state-{policy}-{number}", "--balancing", policy)
            try:
                httpx.post(f"{up.api}{API}", json=spec(artifact)).raise_for_status()
                wait(lambda up=up: all_ready(up), 300)
                alone = Measured()
                asyncio.run(workload(up.gateway, count, turns, parallel, alone))
                print(number, policy, json.dumps(alone.summary()), flush=True)
                measured[policy].add(alone)
            finally:
                up.stop()
    found = {policy: m.summary() for policy, m in measured.items()}
    if "prefix" in found:
        base = found["prefix"]["ttft_p90_ms"]
        for policy in found:
            found[policy]["ttft_p90_vs_prefix"] = round(found[policy]["ttft_p90_ms"] / base, 2)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=48)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=8, help="conversations at once")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", nargs="*", choices=POLICIES, default=list(POLICIES))
    args = parser.parse_args()
    BENCH.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        found = run(
            Path(tmp), args.conversations, args.turns, args.parallel, args.rounds,
            tuple(args.only),
        )  # fmt: skip
    print(json.dumps(found, indent=1))
    (BENCH / "llm-routing.json").write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
