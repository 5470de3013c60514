"""Side-by-side runtime benchmark: modelplane against MLServer and KServe on the iris model.

Every server runs pinned to CPU 0 and the load generator (wrk) to CPU 1, one server at a time, in
the same run on the same machine. Each point gets a warm-up and then a timed run; the table reports
requests/s, p50 and p99, and each modelplane arm's throughput ratio to the best peer.

    python benchmarks/runtime/run.py [--seconds 8] [--concurrency 1 8 64] [--rows 1 64]

Peers install into .bench/ (one virtual environment each) on first use; wrk comes from Debian.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / ".bench"
HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
SERVER_CPU, LOAD_CPU = "0", "1"
PEERS = {
    "mlserver": ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "scikit-learn==1.9.1"],
    "kserve": ["kserve==0.21.0", "onnxruntime==1.31.1"],
}


@dataclass
class Arm:
    name: str
    what: str
    command: Callable[[int], list[str]]
    path: str = "/v2/models/iris/infer"
    ready: str = "/v2/health/ready"
    env: dict[str, str] = field(default_factory=dict)
    peer: str | None = None  # the virtual environment to install before starting


@dataclass
class Point:
    arm: str
    rows: int
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def venv(peer: str) -> Path:
    path = BENCH / f"venv-{peer}"
    if not (path / ".ready").exists():
        subprocess.run([PYTHON, "-m", "venv", str(path)], check=True)
        subprocess.run([str(path / "bin" / "pip"), "install", "-q", *PEERS[peer]], check=True)
        (path / ".ready").touch()
    return path


def artifacts() -> Path:
    out = BENCH / "iris"
    subprocess.run([PYTHON, str(ROOT / "examples/iris/train.py"), "--out", str(out)], check=True)
    (out / "iris-nobatch.yaml").write_text(
        (out / "iris.yaml").read_text() + "  batching: {maxBatchSize: 1}\n"
    )
    mlserver = BENCH / "mlserver-model"
    mlserver.mkdir(exist_ok=True)
    shutil.copy(out / "model.joblib", mlserver / "model.joblib")
    settings = {
        "name": "iris",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
    }
    (mlserver / "model-settings.json").write_text(json.dumps(settings))
    return out


def arms(iris: Path) -> list[Arm]:
    # Per-request log lines off, as for every peer (the access log's cost is measured apart).
    modelplane = [PYTHON, "-m", "modelplane", "serve", "--log-level", "warning", "--no-access-log"]
    mlserver, kserve = BENCH / "venv-mlserver", BENCH / "venv-kserve"

    def mlserver_command(port: int) -> list[str]:
        settings = {
            "http_port": port,
            "grpc_port": port + 1,
            "metrics_port": port + 2,
            # MLServer 1.7.1's worker pool dies at start with current dependencies
            # ("no current event loop"), so inference runs in the server process.
            "parallel_workers": 0,
        }
        (BENCH / "mlserver-model" / "settings.json").write_text(json.dumps(settings))
        return [str(mlserver / "bin" / "mlserver"), "start", str(BENCH / "mlserver-model")]

    return [
        Arm(
            "modelplane",
            "ONNX, adaptive batching (default)",
            lambda p: [*modelplane, "-f", str(iris / "iris.yaml"), "--port", str(p)],
        ),
        Arm(
            "modelplane-nobatch",
            "ONNX, maxBatchSize 1",
            lambda p: [*modelplane, "-f", str(iris / "iris-nobatch.yaml"), "--port", str(p)],
        ),
        Arm(
            "mlserver",
            "MLServer 1.7.1, mlserver-sklearn (joblib)",
            mlserver_command,
            peer="mlserver",
        ),
        Arm(
            "kserve",
            "KServe 0.21.0 ModelServer, ONNX in a kserve.Model",
            lambda p: [
                str(kserve / "bin" / "python"),
                str(HERE / "peers" / "kserve_server.py"),
                str(iris / "model.onnx"),
                "--http_port",
                str(p),
                # Per-request log lines off, as for every other arm.
                "--enable_latency_logging",
                "false",
                "--configure_logging",
                "false",
            ],
            peer="kserve",
        ),
        Arm(
            "ceiling",
            "minimal asyncio server, same ONNX predict",
            lambda p: [PYTHON, str(HERE / "ceiling.py"), str(iris / "model.onnx"), str(p)],
            ready="/",
        ),
    ]


def body(rows: int) -> str:
    features = np.tile(np.array([5.1, 3.5, 1.4, 0.2], dtype=np.float32), (rows, 1))
    tensor = {
        "name": "X",
        "datatype": "FP32",
        "shape": [rows, 4],
        "data": features.ravel().tolist(),
    }
    return json.dumps({"inputs": [tensor]})


def start(arm: Arm, port: int, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, *arm.command(port)],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, **arm.env},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{arm.name} exited: {log.read_text()[-2000:]}")
        try:
            reply = httpx.post(
                f"http://127.0.0.1:{port}{arm.path}",
                content=body(1),
                headers={"Content-Type": "application/json"},
                timeout=2,
            )
            if reply.status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{arm.name} not ready: {log.read_text()[-2000:]}")


def wrk(url: str, rows: int, concurrency: int, seconds: int) -> tuple[float, float, float, int]:
    script = BENCH / f"post-{rows}.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [[{body(rows)}]]\n"
    )
    command = [
        "taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s",
        "--latency", "-s", str(script), url,
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    failures = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    failed = int(errors.group(1)) if errors else 0
    if failures:
        failed += sum(int(g) for g in failures.groups())
    return rps, _percentile(output, "50%"), _percentile(output, "99%"), failed


def _percentile(output: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {label} in wrk output:\n{output}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
    return float(match.group(1)) * scale


def measure(arm: Arm, args: argparse.Namespace, port: int) -> list[Point]:
    if arm.peer is not None:
        venv(arm.peer)
    process = start(arm, port, BENCH / f"{arm.name}.log")
    url = f"http://127.0.0.1:{port}{arm.path}"
    points = []
    try:
        for rows in args.rows:
            for concurrency in args.concurrency:
                wrk(url, rows, concurrency, args.warmup)
                rps, p50, p99, errors = wrk(url, rows, concurrency, args.seconds)
                point = Point(arm.name, rows, concurrency, rps, p50, p99, errors)
                print(f"  {point}", flush=True)
                points.append(point)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return points


def table(points: list[Point], arm_list: list[Arm]) -> str:
    peers = ("mlserver", "kserve")
    lines = [
        "| rows | conc | server | req/s | p50 ms | p99 ms | errors | vs best peer |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    keys = sorted({(p.rows, p.concurrency) for p in points})
    for rows, concurrency in keys:
        here = [p for p in points if (p.rows, p.concurrency) == (rows, concurrency)]
        best_peer = max((p.rps for p in here if p.arm in peers), default=0.0)
        for p in here:
            ratio = f"{p.rps / best_peer:.2f}x" if best_peer else "-"
            lines.append(
                f"| {rows} | {concurrency} | {p.arm} | {p.rps:,.0f} | {p.p50_ms:.2f} | "
                f"{p.p99_ms:.2f} | {p.errors} | {ratio} |"
            )
    arms_text = "\n".join(f"- **{a.name}**: {a.what}" for a in arm_list)
    return arms_text + "\n\n" + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--arms", nargs="*", help="run only these arms")
    args = parser.parse_args()
    BENCH.mkdir(exist_ok=True)
    arm_list = [a for a in arms(artifacts()) if not args.arms or a.name in args.arms]
    points: list[Point] = []
    for index, arm in enumerate(arm_list):
        print(f"{arm.name}: {arm.what}", flush=True)
        points.extend(measure(arm, args, 18000 + 10 * index))
    report = table(points, arm_list)
    (BENCH / "runtime-results.json").write_text(json.dumps([p.__dict__ for p in points], indent=1))
    (BENCH / "runtime-results.md").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
