"""What tracing and the access log cost: the same wrk load through `modelplane up` with both
off, the access log on (the default; and sampled at 10%), and tracing sampled at 10% and at 100%
(access log off), exporting to a real OpenTelemetry Collector on the same machine.

    python -m benchmarks.observability.run [--seconds 8] [--rounds 2] [--concurrency 1 16]

For each arm a fresh `modelplane up` (one iris replica, fixed; adaptive batching on) takes the load
through the gateway (gateway and runtime: the client's view) and straight at the replica (the
runtime alone). Arms alternate over ``--rounds`` and each figure is the median of its rounds.
The collector (file exporter to /dev/null) shares the machine, as a node-local agent would.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.platform.run import BENCH, Up, infer_ok, model, replica_pids, replica_port, wait
from benchmarks.runtime.run import wrk
from modelplane.processes import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
QUIET = ("--no-access-log",)
# arm -> (the environment tracing reads, more options for `modelplane up`)
ARMS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "off": ({}, QUIET),
    "access log": ({}, ()),
    "access log 10%": ({}, ("--access-log-sample", "0.1")),
    "sampled 10%": (
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
        QUIET,
    ),
    "sampled 100%": ({"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, QUIET),
}


@dataclass(frozen=True)
class Figure:
    arm: str
    path: str  # gateway or runtime
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def collector(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = subprocess.run(
        [str(ROOT / "scripts" / "otelcol-testenv")], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    port = 14318
    config = work / "collector.yaml"
    config.write_text(
        f"receivers:\n  otlp:\n    protocols:\n      http: {{endpoint: '127.0.0.1:{port}'}}\n"
        "processors:\n  batch: {}\n"
        "exporters:\n  file: {path: /dev/null, format: proto}\n"
        "service:\n  telemetry: {metrics: {level: none}}\n  pipelines:\n"
        "    traces: {receivers: [otlp], processors: [batch], exporters: [file]}\n"
    )
    log = (work / "collector.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config={config}"], stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )  # fmt: skip
    wait(lambda: "Everything is ready" in (work / "collector.log").read_text(), 30)
    return process, port


def measure(
    arm: str, env: dict[str, str], options: tuple[str, ...], port: int, args: argparse.Namespace
) -> list[Figure]:
    traced = {
        **env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    saved = dict(os.environ)
    if env:
        os.environ.update(traced)
    try:
        with tempfile.TemporaryDirectory(dir=BENCH) as state:
            up = Up(Path(state) / "state", *options)
            try:
                # One replica throughout: the autoscaler must not move the runtime under test.
                up.apply(model("iris", {"scaling": {"minReplicas": 1, "maxReplicas": 1}}))
                wait(lambda: infer_ok(up, "iris"), 60)
                runtime = replica_port(replica_pids("iris-r1")[0])
                figures = []
                for path, url in (
                    ("gateway", f"{up.gateway}/v2/models/iris/infer"),
                    ("runtime", f"http://127.0.0.1:{runtime}/v2/models/iris/infer"),
                ):
                    for concurrency in args.concurrency:
                        wrk(url, 1, concurrency, 2)  # warm up
                        rps, p50, p99, errors = wrk(url, 1, concurrency, args.seconds)
                        figure = Figure(arm, path, concurrency, rps, p50, p99, errors)
                        print(f"  {figure}", flush=True)
                        figures.append(figure)
                return figures
            finally:
                up.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def table(figures: list[Figure], args: argparse.Namespace) -> str:
    lines = [
        "| path | concurrency | arm | req/s | vs off | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in ("gateway", "runtime"):
        for concurrency in args.concurrency:
            base = None
            for arm in ARMS:
                mine = [
                    f for f in figures
                    if f.arm == arm and f.path == path and f.concurrency == concurrency
                ]  # fmt: skip
                rps = statistics.median(f.rps for f in mine)
                p50 = statistics.median(f.p50_ms for f in mine)
                p99 = statistics.median(f.p99_ms for f in mine)
                base = base or rps
                lines.append(
                    f"| {path} | {concurrency} | {arm} | {rps:,.0f} | {rps / base - 1:+.1%} "
                    f"| {p50:.2f} | {p99:.2f} | {sum(f.errors for f in mine)} |"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    BENCH.mkdir(exist_ok=True)
    subprocess.run(
        [sys.executable, str(ROOT / "examples/iris/train.py"), "--out", str(BENCH / "iris")],
        check=True, capture_output=True,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(dir=BENCH) as work:
        process, port = collector(Path(work))
        try:
            figures = []
            for round_ in range(args.rounds):
                for arm, (env, options) in ARMS.items():
                    print(f"round {round_ + 1}, {arm}", flush=True)
                    figures += measure(arm, env, options, port, args)
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(table(figures, args))


if __name__ == "__main__":
    main()
