"""Figures of the embedded platform: time to first inference, cold start, gateway overhead against
nginx, failures during a spec change and during replica kills, scale from zero.

    python benchmarks/platform/run.py [--only startup overhead steady kills fromzero connections]

Everything runs on loopback against a real ``modelplane up``. The overhead comparison sends the
same wrk load to one replica directly, through the modelplane gateway and through nginx as a
reverse proxy; the replica is pinned to CPU 0, and the proxy under test and wrk share CPU 1 in
every arm.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / ".bench"
API = "/apis/modelplane.io/v1alpha1/namespaces/default/models"
ROW = [5.1, 3.5, 1.4, 0.2]
BODY = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": ROW}]})
CONTROL, GATEWAY = 18190, 18180


def model(name: str, spec_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    artifact = BENCH / "iris" / "model.onnx"
    spec: dict[str, Any] = {
        "source": {"uri": artifact.as_uri()},
        "format": "onnx",
        "task": "classification",
        "rollout": {"strategy": "Immediate"},
        **(spec_extra or {}),
    }
    return {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": spec,
    }


class Up:
    def __init__(self, state: Path, *options: str) -> None:
        self.log = (state.parent / "up.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelplane", "up", "--state-dir", str(state),
             "--port", str(CONTROL), "--gateway-port", str(GATEWAY),
             "--max-held", "20000", "--hold-timeout", "180", *options],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.api = f"http://127.0.0.1:{CONTROL}"
        self.gateway = f"http://127.0.0.1:{GATEWAY}"
        wait(lambda: _ok(f"{self.api}/healthz"), 30)

    def apply(self, document: dict[str, Any]) -> None:
        name = document["metadata"]["name"]
        current = httpx.get(f"{self.api}{API}/{name}")
        if current.status_code == 404:
            httpx.post(f"{self.api}{API}", json=document).raise_for_status()
        else:
            httpx.put(f"{self.api}{API}/{name}", json=document).raise_for_status()

    def ready(self, name: str, reason: str = "RevisionReady") -> bool:
        conditions = httpx.get(f"{self.api}{API}/{name}").json()["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["reason"] == reason for c in conditions)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def wait(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise RuntimeError("timed out")


def infer_ok(up: Up, name: str) -> bool:
    try:
        reply = httpx.post(f"{up.gateway}/v2/models/{name}/infer", content=BODY, timeout=60)
    except httpx.TransportError:
        return False
    return reply.status_code == 200


def replica_pids(revision: str) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", "--", f"--model-version {revision} "], capture_output=True, text=True
    )
    return [int(p) for p in found.stdout.split()]


def replica_port(pid: int) -> int:
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return int(cmdline[cmdline.index(b"--port") + 1])


# -- figures ---------------------------------------------------------------------------------


def startup(up: Up) -> dict[str, Any]:
    times = []
    for index in range(3):
        name = f"first-{index}"
        started = time.monotonic()
        up.apply(model(name))
        wait(lambda name=name: infer_ok(up, name), 60)  # held by the gateway until ready
        times.append(time.monotonic() - started)
    up.apply(model("cold", {"scaling": {"minReplicas": 0, "scaleToZeroAfterSeconds": 1}}))
    colds = []
    for _ in range(3):
        wait(lambda: up.ready("cold", "ScaledToZero") and not replica_pids("cold-r1"), 60)
        started = time.monotonic()
        assert infer_ok(up, "cold")
        colds.append(time.monotonic() - started)
    return {"apply_to_first_inference_s": times, "cold_start_s": colds}


def wrk(url: str, concurrency: int, seconds: int = 8) -> dict[str, float]:
    script = BENCH / "platform-post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [[{BODY}]]\n"
    )
    command = [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    subprocess.run(
        [*command[:-4], "-d2s", *command[-3:]], capture_output=True, check=True
    )  # warm-up
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(label: str) -> float:
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        assert m is not None, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50_ms": pct("50%"),
        "p99_ms": pct("99%"),
        "errors": int(errors.group(1)) if errors else 0,
    }


def overhead(up: Up) -> dict[str, Any]:
    up.apply(model("direct", {"scaling": {"minReplicas": 1, "maxReplicas": 1}}))
    wait(lambda: up.ready("direct") and len(replica_pids("direct-r1")) == 1, 60)
    (pid,) = replica_pids("direct-r1")
    port = replica_port(pid)
    subprocess.run(["taskset", "-a", "-p", "-c", "0", str(pid)], capture_output=True, check=True)
    subprocess.run(
        ["taskset", "-a", "-p", "-c", "1", str(up.process.pid)], capture_output=True, check=True
    )
    nginx_port = 18170
    conf = BENCH / "nginx.conf"
    conf.write_text(
        f"worker_processes 1; daemon off; pid {BENCH}/nginx.pid;\n"
        f"error_log {BENCH}/nginx-error.log;\n"
        "events { worker_connections 4096; }\n"
        "http { access_log off; upstream replica { server 127.0.0.1:%d; keepalive 128; }\n"
        "  server { listen 127.0.0.1:%d; location / { proxy_pass http://replica;\n"
        '    proxy_http_version 1.1; proxy_set_header Connection ""; } } }\n' % (port, nginx_port)
    )
    nginx = subprocess.Popen(["taskset", "-c", "1", "nginx", "-c", str(conf), "-p", str(BENCH)])
    time.sleep(1)
    results: dict[str, Any] = {}
    try:
        for concurrency in (1, 64):
            results[f"c{concurrency}"] = {
                "direct": wrk(f"http://127.0.0.1:{port}/v2/models/direct/infer", concurrency),
                "gateway": wrk(f"{up.gateway}/v2/models/direct/infer", concurrency),
                "nginx": wrk(f"http://127.0.0.1:{nginx_port}/v2/models/direct/infer", concurrency),
            }
            print(concurrency, results[f"c{concurrency}"], flush=True)
    finally:
        nginx.terminate()
        nginx.wait()
        subprocess.run(
            ["taskset", "-a", "-p", "-c", "0,1", str(up.process.pid)], capture_output=True
        )
    return results


async def load(url: str, concurrency: int, seconds: float, tally: dict[str, int]) -> None:
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while time.monotonic() < deadline:
                try:
                    async with session.post(
                        url, data=BODY, headers={"Content-Type": "application/json"}
                    ) as reply:
                        await reply.read()
                        key = "ok" if reply.status == 200 else f"status {reply.status}"
                        tally[key] = tally.get(key, 0) + 1
                except aiohttp.ClientError as exc:
                    key = type(exc).__name__
                    tally[key] = tally.get(key, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def steady(up: Up) -> dict[str, Any]:
    up.apply(model("steady"))
    wait(lambda: up.ready("steady"), 60)
    tally: dict[str, int] = {"ok": 0}

    async def scenario() -> None:
        task = asyncio.create_task(load(f"{up.gateway}/v2/models/steady/infer", 16, 40, tally))
        await asyncio.sleep(8)
        await asyncio.to_thread(up.apply, model("steady", {"batching": {"maxBatchSize": 16}}))
        await task

    asyncio.run(scenario())
    switched = bool(replica_pids("steady-r2")) and not replica_pids("steady-r1")
    return {"requests": dict(tally), "switched_to_r2": switched}


def kills(up: Up) -> dict[str, Any]:
    up.apply(model("kills", {"scaling": {"minReplicas": 3, "maxReplicas": 3}}))
    wait(lambda: up.ready("kills") and len(replica_pids("kills-r1")) == 3, 60)
    tally: dict[str, int] = {"ok": 0}
    killed = []

    async def scenario() -> None:
        task = asyncio.create_task(load(f"{up.gateway}/v2/models/kills/infer", 16, 95, tally))
        for _ in range(3):
            await asyncio.sleep(30)
            victim = replica_pids("kills-r1")[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
        await task

    asyncio.run(scenario())
    total = sum(tally.values())
    return {"requests": dict(tally), "kills": len(killed), "success_rate": tally["ok"] / total}


def fromzero(up: Up) -> dict[str, Any]:
    up.apply(model("zero", {"scaling": {"minReplicas": 0, "scaleToZeroAfterSeconds": 1}}))
    wait(lambda: up.ready("zero", "ScaledToZero") and not replica_pids("zero-r1"), 90)

    async def burst() -> list[int]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def one() -> int:
                async with session.post(f"{up.gateway}/v2/models/zero/infer", data=BODY) as reply:
                    await reply.read()
                    return reply.status

            return await asyncio.gather(*(one() for _ in range(100)))

    started = time.monotonic()
    statuses = asyncio.run(burst())
    return {"succeeded": statuses.count(200), "of": 100, "seconds": time.monotonic() - started}


SLOW_MODEL = """
import time
import numpy as np


class Model:
    inputs = [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    batchable = True

    def load(self, path, parameters):
        time.sleep(float(parameters.get("delay", "0")))

    def predict(self, inputs):
        return {"label": np.zeros(len(inputs["X"]), dtype=np.int64)}
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def connections(up: Up) -> dict[str, Any]:
    """10,000 concurrent requests held open by the gateway through a 20 s cold start, twice."""
    source = BENCH / "slow_model.py"
    source.write_text(SLOW_MODEL)
    spec = {
        "source": {"uri": source.as_uri()},
        "format": "python",
        "task": "classification",
        "scaling": {"minReplicas": 0, "scaleToZeroAfterSeconds": 1},
        "runtime": {"parameters": {"delay": "20"}},
    }
    document = model("held")
    document["spec"] = {**spec, "rollout": {"strategy": "Immediate"}}
    up.apply(document)
    results: dict[str, Any] = {"rss_mib_before": rss_mib(up.process.pid), "rounds": []}

    async def burst() -> dict[str, Any]:
        counts: dict[str, int] = {}
        peak = {"rss": 0.0, "held": 0.0}
        timeout = aiohttp.ClientTimeout(total=240)
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=timeout
        ) as session:

            async def one() -> None:
                try:
                    async with session.post(
                        f"{up.gateway}/v2/models/held/infer", data=BODY
                    ) as reply:
                        await reply.read()
                        key = str(reply.status)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    key = type(exc).__name__
                counts[key] = counts.get(key, 0) + 1

            async def watch() -> None:
                while True:
                    peak["rss"] = max(peak["rss"], rss_mib(up.process.pid))
                    text = (await (await session.get(f"{up.gateway}/metrics")).read()).decode()
                    match = re.search(
                        r'modelplane_gateway_held_requests\{model="default/held"\} ([\d.]+)', text
                    )
                    if match:
                        peak["held"] = max(peak["held"], float(match.group(1)))
                    await asyncio.sleep(0.5)

            watcher = asyncio.create_task(watch())
            started = time.monotonic()
            await asyncio.gather(*(one() for _ in range(10_000)))
            watcher.cancel()
        return {"statuses": counts, "seconds": time.monotonic() - started,
                "peak_held": peak["held"], "peak_rss_mib": peak["rss"]}  # fmt: skip

    for _ in range(2):
        wait(lambda: up.ready("held", "ScaledToZero") and not replica_pids("held-r1"), 120)
        round_result = asyncio.run(burst())
        time.sleep(5)
        round_result["rss_mib_after"] = rss_mib(up.process.pid)
        results["rounds"].append(round_result)
        print(round_result, flush=True)
    return results


FIGURES = {
    "startup": startup,
    "overhead": overhead,
    "steady": steady,
    "kills": kills,
    "fromzero": fromzero,
    "connections": connections,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(FIGURES), default=list(FIGURES))
    parser.add_argument(
        "--up-option", action="append", default=[], help="an option for `modelplane up` (repeat)"
    )
    args = parser.parse_args()
    run_figures(FIGURES, args.only, "platform-results.json", args.up_option)


def run_figures(
    figures: Mapping[str, Callable[[Up], Any]],
    only: list[str],
    results: str,
    up_options: Sequence[str] = (),
) -> None:
    """Train the iris example, start one `modelplane up`, measure each figure named in ``only``
    against it, print each as it comes and write them all to .bench/``results``."""
    BENCH.mkdir(exist_ok=True)
    subprocess.run(
        [sys.executable, str(ROOT / "examples/iris/train.py"), "--out", str(BENCH / "iris")],
        check=True, capture_output=True,
    )  # fmt: skip
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        up = Up(Path(tmp) / "state", *up_options)
        try:
            for name in only:
                print(f"== {name}", flush=True)
                found[name] = figures[name](up)
                print(json.dumps(found[name], indent=1), flush=True)
        finally:
            up.stop()
    (BENCH / results).write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
