"""Continuous batching on one CPU core: aggregate tokens/s and time to first token at concurrency
1 and 8, the llama.cpp engine in the runtime (parallel slots) against llama.cpp's own server from
llama-cpp-python (`python -m llama_cpp.server`), on the same GGUF model in the same run.

    python -m benchmarks.llm.batching [--embedding 1024 --layers 8] [--requests 6]
                                      [--concurrency 1 8] [--only runtime llama-cpp-server]

The model is made here, seeded, by examples/llm/make_models.py at a size where computing
dominates on one core (hidden 1024, 8 layers, f32: about 330 MB; `--embedding 256 --layers 4`
tries the script in seconds). Each server runs alone, pinned to CPU 0 with one thread; the
clients run in this process on CPU 1. At concurrency c, c clients take c x `--requests` streamed
chat requests from one list, each client one request after another (after one warm-up request per
server); each request has a prompt of its own, and answers are 32 to 128 tokens long (drawn per
request, seeded), as a chat's are, so clients do not move in lockstep.
Tokens/s is the completion tokens of all requests over the wall time of the run; time to first
token (TTFT) is measured at the client, from sending the request to its first streamed content.

The server's CPU time (all its threads) is read from /proc around each run: tokens per CPU second
tells how much batching saves even where other work shares the machine and the wall clock lies.

Targets: at c=8 at least 3x the tokens/s of c=1, and a TTFT p50 within 3x of c=1's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.llm.run import chat_model, make_models, summary, timed_stream
from benchmarks.platform.run import BENCH, wait

SERVER_CPU, CLIENT_CPU = "0", 1
CONTEXT = 512  # tokens per sequence: a chat turn and its answer
PROMPT = "Tell me a story about a small robot who learned to paint the sky at night."


def runtime_command(work: Path, model: Path, port: int, parallel: int) -> list[str]:
    document = chat_model("bench-chat", model, replicas=1, cache_mib=64)
    document["spec"]["generation"]["contextLength"] = CONTEXT
    document["spec"]["runtime"]["parameters"]["parallel"] = str(parallel)
    manifest = work / "bench-chat.json"
    manifest.write_text(json.dumps(document))
    return [sys.executable, "-m", "modelplane", "serve", "-f", str(manifest), "--port", str(port),
            "--no-access-log"]  # fmt: skip


def llama_server_command(model: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--port", str(port),
            "--host", "127.0.0.1", "--n_ctx", str(CONTEXT), "--n_threads", "1",
            "--n_threads_batch", "1", "--verbose", "False",
            # By default a new request interrupts the one generating; here each waits its turn.
            "--interrupt_requests", "False"]  # fmt: skip


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def cpu_seconds(pid: int) -> float:
    """CPU time a process and its threads have used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def clients(
    url: str, model: str, concurrency: int, requests: int, pid: int
) -> dict[str, Any]:
    """``concurrency`` clients taking ``requests`` streamed chats each from one list, one after
    another; tokens/s over the wall time of the whole list."""
    draw = random.Random(7)  # noqa: S311 - a reproducible workload
    work = [(number, draw.randint(32, 128)) for number in range(concurrency * requests)]
    ttfts: list[float] = []
    tokens = empty = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal tokens, empty
        while work:
            number, length = work.pop(0)
            body = {
                "model": model,
                # Each request its own: a shared prompt would be read once, then found cached.
                "messages": [{"role": "user", "content": f"Chat {number}: {PROMPT}"}],
                "max_tokens": length,
                "temperature": 1.0,
                "seed": number,
            }
            first, _, made, _ = await timed_stream(http, url, body)
            if made == 0:  # a stream that ended with no content: no time to a first token
                empty += 1
                continue
            ttfts.append(first)
            tokens += made

    limits = httpx.Limits(max_connections=concurrency + 1)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        await timed_stream(http, url, {"model": model, "messages": [{"role": "user",
                           "content": PROMPT}], "max_tokens": 8})  # fmt: skip
        started, cpu = time.perf_counter(), cpu_seconds(pid)
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu
    return {
        **summary(ttfts),
        "tokens": tokens,
        "empty_answers": empty,
        "seconds": round(elapsed, 2),
        "tokens_per_second": round(tokens / elapsed, 1),
        "server_cpu_seconds": round(cpu, 2),
        "tokens_per_cpu_second": round(tokens / cpu, 1),
    }


def measure(
    name: str, argv: list[str], port: int, health: str, args: argparse.Namespace
) -> dict[str, Any]:
    """One server, started alone on CPU 0, measured at each concurrency, then stopped."""
    log = (BENCH / f"batching-{name}.log").open("wb")
    process = subprocess.Popen(["taskset", "-c", SERVER_CPU, *argv], stdout=log, stderr=log)
    try:
        wait(lambda: ready(f"http://127.0.0.1:{port}{health}"), 600)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        found: dict[str, Any] = {}
        for concurrency in args.concurrency:
            found[f"c{concurrency}"] = asyncio.run(
                clients(url, "bench-chat", concurrency, args.requests, process.pid)
            )
            print(name, concurrency, json.dumps(found[f"c{concurrency}"]), flush=True)
        low, high = (found[f"c{c}"] for c in (min(args.concurrency), max(args.concurrency)))
        found["tokens_per_second_ratio"] = round(
            high["tokens_per_second"] / low["tokens_per_second"], 2
        )
        found["tokens_per_cpu_second_ratio"] = round(
            high["tokens_per_cpu_second"] / low["tokens_per_cpu_second"], 2
        )
        found["ttft_p50_ratio"] = round(high["ttft_p50_ms"] / low["ttft_p50_ms"], 2)
        return found
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedding", type=int, default=1024, help="the model's width")
    parser.add_argument("--layers", type=int, default=8, help="the model's depth")
    parser.add_argument("--requests", type=int, default=6, help="requests per client")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--only", nargs="*", default=["runtime", "llama-cpp-server"],
                        choices=["runtime", "llama-cpp-server"])  # fmt: skip
    args = parser.parse_args()
    BENCH.mkdir(exist_ok=True)
    os.sched_setaffinity(0, {CLIENT_CPU})
    found: dict[str, Any] = {"model": f"hidden {args.embedding}, {args.layers} layers, f32"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "bench-chat.gguf"
        make_models.write(model, seed=7, size=make_models.Size(args.embedding, args.layers))
        found["model_mib"] = round(model.stat().st_size / 2**20)
        parallel = max(args.concurrency)
        if "runtime" in args.only:
            port = free_port()
            argv = runtime_command(work, model, port, parallel)
            found["runtime"] = measure("runtime", argv, port, "/v2/health/ready", args)
        if "llama-cpp-server" in args.only:
            port = free_port()
            argv = llama_server_command(model, port)
            found["llama-cpp-server"] = measure("llama-cpp-server", argv, port, "/v1/models", args)
    print(json.dumps(found, indent=1), flush=True)
    (BENCH / "llm-batching.json").write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
