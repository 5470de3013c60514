"""``modelplane up --with-prometheus``: a real Prometheus run beside the embedded platform.

It scrapes what the targets file lists (the gateway and every ready replica, kept current by
``scrape_targets``) every ``SCRAPE_SECONDS``, keeps its data in the state directory, and is
stopped with the platform. The platform then reads canary analysis from it, as a cluster does.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from modelplane.errors import ModelplaneError
from modelplane.processes import die_with_parent

SCRAPE_SECONDS = 2
START_SECONDS = 30.0


class PrometheusStartError(ModelplaneError):
    """Prometheus could not be started beside the platform."""


@dataclass(frozen=True)
class Scraping:
    targets: Path  # the file_sd targets file
    run_port: int | None = None  # run Prometheus on this port; None: only keep the file
    enabled: bool = False

    async def start(self, state_dir: Path, gateway: str) -> PrometheusBeside | None:
        if self.run_port is None:
            return None
        binary = shutil.which("prometheus")
        if binary is None:
            raise PrometheusStartError(
                "--with-prometheus: no `prometheus` on PATH (Debian: apt install prometheus); "
                "or point --prometheus at one you run"
            )
        home = state_dir / "prometheus"
        home.mkdir(parents=True, exist_ok=True)
        config = home / "prometheus.yml"
        config.write_text(
            f"global: {{scrape_interval: {SCRAPE_SECONDS}s, evaluation_interval: "
            f"{SCRAPE_SECONDS}s}}\n"
            "scrape_configs:\n"
            "  - job_name: modelplane\n"
            f"    file_sd_configs: [{{files: ['{self.targets}'], refresh_interval: 5s}}]\n"
        )
        log = (state_dir / "logs").resolve()
        log.mkdir(parents=True, exist_ok=True)
        with (log / "prometheus.log").open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                binary, f"--config.file={config}", f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.run_port}",
                stdout=out, stderr=out, preexec_fn=die_with_parent,
            )  # fmt: skip
        beside = PrometheusBeside(process, f"http://127.0.0.1:{self.run_port}", log)
        await beside.wait_ready()
        return beside


@dataclass
class PrometheusBeside:
    process: asyncio.subprocess.Process
    url: str
    logs: Path

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    break
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/-/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        await self.stop()
        raise PrometheusStartError(
            f"prometheus did not become ready at {self.url}; see {self.logs / 'prometheus.log'}"
        )

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
