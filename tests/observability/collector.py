"""A real OpenTelemetry Collector (built by ``scripts/otelcol-testenv``) receiving OTLP over
HTTP and gRPC on loopback and writing everything it receives to a file, one OTLP/JSON object
per line, for the tests to read."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.processes import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
BUILD_SECONDS = 30 * 60


def collector_binary() -> Path:
    """The collector's path: the last line ``scripts/otelcol-testenv`` prints (built once)."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "otelcol-testenv")],
        capture_output=True, text=True, timeout=BUILD_SECONDS, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"scripts/otelcol-testenv failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    status: dict[str, Any]


@dataclass
class Metric:
    service: str
    name: str
    kind: str  # sum, gauge or histogram
    attributes: dict[str, Any]
    point: dict[str, Any]  # the OTLP/JSON data point


@dataclass
class Collector:
    binary: Path
    work_dir: Path
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.out = self.work_dir / "received.json"
        config = self.work_dir / "collector.yaml"
        config.write_text(
            "receivers:\n  otlp:\n    protocols:\n"
            f"      grpc: {{endpoint: '127.0.0.1:{self.grpc_port}'}}\n"
            f"      http: {{endpoint: '127.0.0.1:{self.http_port}'}}\n"
            "processors:\n  batch: {timeout: 100ms}\n"
            f"exporters:\n  file: {{path: '{self.out}', format: json}}\n"
            "service:\n  telemetry: {metrics: {level: none}}\n  pipelines:\n"
            "    traces: {receivers: [otlp], processors: [batch], exporters: [file]}\n"
            "    metrics: {receivers: [otlp], processors: [batch], exporters: [file]}\n"
        )
        self.log = self.work_dir / "collector.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(self.binary), f"--config={config}"], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while "Everything is ready" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the collector did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def spans(self) -> list[Span]:
        """Every span received so far."""
        found = []
        for received in self._received():
            for resource in received.get("resourceSpans", []):
                attributes = _attributes(resource.get("resource", {}).get("attributes", []))
                for scope in resource.get("scopeSpans", []):
                    for span in scope.get("spans", []):
                        found.append(_span(str(attributes.get("service.name", "")), span))
        return found

    def metrics(self) -> list[Metric]:
        """Every metric data point received so far."""
        found = []
        for received in self._received():
            for resource in received.get("resourceMetrics", []):
                service = _attributes(resource.get("resource", {}).get("attributes", []))
                for scope in resource.get("scopeMetrics", []):
                    for metric in scope.get("metrics", []):
                        kinds = [k for k in ("sum", "gauge", "histogram") if k in metric]
                        name = str(service.get("service.name", ""))
                        for kind in kinds:  # none: a metric with no data points yet
                            for point in metric[kind].get("dataPoints", []):
                                labels = _attributes(point.get("attributes", []))
                                found.append(Metric(name, metric["name"], kind, labels, point))
        return found

    def _received(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        found = []
        for line in self.out.read_text().splitlines():
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # the line the collector is writing right now
        return found

    def stop(self) -> None:
        stop_process(self.process)


def _span(service: str, span: dict[str, Any]) -> Span:
    return Span(
        service=service,
        name=span["name"],
        trace_id=span["traceId"],
        span_id=span["spanId"],
        parent_id=span.get("parentSpanId", ""),
        kind=int(span.get("kind", 0)),
        attributes=_attributes(span.get("attributes", [])),
        status=span.get("status", {}),
    )


def _attributes(found: list[dict[str, Any]]) -> dict[str, Any]:
    """OTLP/JSON key-values as a plain dict (ints arrive as strings in OTLP/JSON)."""
    return {item["key"]: _value(item.get("value", {})) for item in found if item.get("value")}


def _value(value: dict[str, Any]) -> Any:
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [_value(v) for v in value["arrayValue"].get("values", [])]
    return next(iter(value.values()))
