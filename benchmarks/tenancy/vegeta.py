"""Open-loop HTTP load from vegeta (a Go load generator): requests on a fixed schedule whatever
the answers, at a fraction of the CPU a Python client spends per request, so the load generator
on the same 2-core machine takes less from what it measures. Built once from its Go module into
``~/.cache/modelplane/bench-tools``."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

VERSION = "v12.13.0"
TOOLS = Path(
    os.environ.get("MODELPLANE_BENCH_TOOLS", Path.home() / ".cache/modelplane/bench-tools")
)


@dataclass(frozen=True)
class Hit:
    sent: float  # seconds from the attack's start
    status: int  # 0: no answer (connection error, timeout)
    latency: float  # seconds


def vegeta() -> Path:
    binary = TOOLS / "vegeta"
    if not binary.exists():
        TOOLS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["go", "install", f"github.com/tsenart/vegeta/v12@{VERSION}"],
            env={**os.environ, "GOBIN": str(TOOLS)}, check=True,
        )  # fmt: skip
    return binary


def attack(url: str, body: str, rate: float, seconds: float) -> list[Hit]:
    """POST ``body`` (JSON) to ``url`` ``rate`` times a second for ``seconds``."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "body.json").write_text(body)
        (work / "targets").write_text(
            f"POST {url}\nContent-Type: application/json\n@{work / 'body.json'}\n"
        )
        results = work / "results.bin"
        subprocess.run(
            [str(vegeta()), "attack", "-targets", str(work / "targets"), "-rate", f"{rate:g}/1s",
             "-duration", f"{seconds:g}s", "-timeout", "30s", "-output", str(results)],
            check=True,
        )  # fmt: skip
        encoded = subprocess.run(
            [str(vegeta()), "encode", "-to", "json", str(results)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    hits = [json.loads(line) for line in encoded.splitlines() if line.strip()]
    if not hits:
        return []
    start = min(_seconds(hit["timestamp"]) for hit in hits)
    return [
        Hit(_seconds(hit["timestamp"]) - start, int(hit["code"]), hit["latency"] / 1e9)
        for hit in hits
    ]


def _seconds(stamp: str) -> float:
    """An RFC 3339 timestamp with nanoseconds, as seconds (datetime keeps microseconds)."""
    whole, _, fraction = stamp.partition(".")
    digits = "".join(c for c in fraction if c.isdigit())
    zone = fraction[len(digits) :] or "Z"
    base = datetime.fromisoformat(whole + zone.replace("Z", "+00:00")).timestamp()
    return base + (float("0." + digits) if digits else 0.0)
