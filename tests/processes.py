"""Real modelplane processes for tests: started on a free loopback port, awaited on readiness."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from modelplane.processes import stop_process as stop

STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM, and SIGKILL if it has not exited within ``timeout``."""
    stop(process, timeout)


def modelplane(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelplane", *args]


@dataclass
class RuntimeProcess:
    """``modelplane serve`` in a subprocess, its output captured to a log file."""

    args: list[str]
    log: Path
    cwd: Path | None = None
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._handle = self.log.open("wb")
        environment = {**os.environ, "MODELPLANE_CACHE": str(self.log.parent / "cache"), **self.env}
        self.process = subprocess.Popen(
            modelplane("serve", *self.args, "--port", str(self.port)),
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            env=environment,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_listening(self) -> None:
        self._wait(lambda reply: True)

    def wait_ready(self) -> None:
        self._wait(lambda reply: reply.status_code == 200)

    def _wait(self, done: Callable[[httpx.Response], bool]) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"runtime exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                reply = httpx.get(f"{self.url}/v2/health/ready", timeout=1)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if done(reply):
                return
            time.sleep(0.05)
        raise AssertionError(f"runtime not ready after {STARTUP_SECONDS}s:\n{self.output()}")

    def wait_exit(self, timeout: float = STARTUP_SECONDS) -> int:
        return self.process.wait(timeout=timeout)

    def terminate(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._handle.close()
        return self.process.returncode


@contextmanager
def serving(manifest: Path, log: Path, *args: str) -> Iterator[RuntimeProcess]:
    """``modelplane serve -f manifest``, ready, and stopped afterwards."""
    runtime = RuntimeProcess(["-f", str(manifest), *args], log)
    try:
        runtime.wait_ready()
        yield runtime
    finally:
        runtime.terminate()


def scraped(
    base_url: str,
    name: str,
    labels: dict[str, str] | None = None,
    default: float | None = None,
) -> float:
    """The value of the sample ``name`` on ``base_url``/metrics, summed over the series whose
    labels include ``labels``; ``default`` when there is none (else an AssertionError)."""
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    wanted = (labels or {}).items()
    values = [
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and wanted <= sample.labels.items()
    ]
    if not values:
        if default is not None:
            return default
        raise AssertionError(f"no metric {name} {labels or ''} at {base_url}/metrics")
    return sum(values)


def access_lines(log: str) -> list[dict[str, Any]]:
    """The access lines of a process's JSON log, as objects."""
    found = [orjson.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [line for line in found if line.get("logger") == "modelplane.access"]
