"""A real Prometheus server (Debian's ``prometheus`` package) on loopback, for the tests."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.processes import free_port, stop_process

SCRAPE_SECONDS = 1


@dataclass
class PrometheusServer:
    """Scrapes ``targets`` (host:port, path /metrics) every second, evaluating ``rules`` (rule
    files) as often."""

    work_dir: Path
    targets: list[str]
    port: int = field(default_factory=free_port)
    rules: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise AssertionError(
                "prometheus is missing: run ./scripts/test as root (Debian package prometheus)"
            )
        config = self.work_dir / "prometheus.yml"
        config.write_text(
            f"global: {{scrape_interval: {SCRAPE_SECONDS}s, evaluation_interval: 1s}}\n"
            f"rule_files: {[str(path) for path in self.rules]}\n"
            "scrape_configs:\n"
            f"  - job_name: gateway\n    static_configs: [{{targets: {self.targets}}}]\n"
        )
        self.log = self.work_dir / "prometheus.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    binary, f"--config.file={config}", f"--storage.tsdb.path={self.work_dir}/data",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"prometheus did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        reply = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        reply.raise_for_status()
        result: list[dict[str, Any]] = reply.json()["data"]["result"]
        return result

    def stop(self) -> None:
        stop_process(self.process)
