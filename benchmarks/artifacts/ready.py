"""Figure 2: time to Ready of a large ONNX model (``model.onnx`` beside ``weights.bin``) served
by a real ``modelplane serve`` process, from its start to ``/v2/health/ready`` answering 200:
from ``file://``, from ``s3://`` into an empty cache, and from ``s3://`` again with that cache
(pinned, so the store is not asked)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from tests.artifacts.s3server import BUCKET
from tests.processes import free_port, modelplane, stop_process

from benchmarks.artifacts.bench import Bench, median, wait_for
from benchmarks.artifacts.data import upload, write_onnx_model
from modelplane.artifacts import Limits, digest_of

NAME = "large"
PREFIX = "model"
READY_SECONDS = 600
ARMS = ("file", "s3_uncached", "s3_cached")


def manifest(path: Path, source: dict[str, str]) -> Path:
    """A Model document (JSON, which the YAML reader takes as it is)."""
    spec = {"source": source, "format": "onnx", "task": "regression"}
    document = {"apiVersion": "modelplane.io/v1alpha1", "kind": "Model",
                "metadata": {"name": NAME}, "spec": spec}  # fmt: skip
    path.write_text(json.dumps(document))
    return path


def answers_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"modelplane serve exited:\n{log.read_text(errors='replace')[-3000:]}")
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def time_to_ready(model: Path, cache: Path, log: Path) -> float:
    """Seconds from starting ``modelplane serve -f model`` to its readiness answering 200; the
    model then answers one inference, and the process is stopped."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MODELPLANE_CACHE": str(cache)}
    os.sync()  # what earlier arms wrote is not left for this one to flush
    with log.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            modelplane("serve", "-f", str(model), "--port", str(port)),
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        wait_for(lambda: answers_ready(url, process, log), READY_SECONDS, "ready")
        seconds = time.perf_counter() - started
        body = {"inputs": [{"name": "row", "datatype": "INT64", "shape": [2], "data": [0, 1]}]}
        reply = httpx.post(f"{url}/v2/models/{NAME}/infer", json=body, timeout=30)
        if reply.status_code != 200:
            raise RuntimeError(f"the model did not answer: {reply.status_code} {reply.text}")
    finally:
        stop_process(process)
    return seconds


def figure(bench: Bench) -> dict[str, Any]:
    local = bench.work / "model"
    size = write_onnx_model(local, bench.model_mib)
    upload(bench.server.client(), BUCKET, local, PREFIX)
    digest = digest_of(local, Limits(), local.as_uri())
    uri = f"s3://{BUCKET}/{PREFIX}/"
    models = {
        "file": manifest(bench.work / "file.json", {"uri": local.as_uri()}),
        "s3": manifest(bench.work / "s3.json",
                       {"uri": uri, "endpoint": bench.server.endpoint, "sha256": digest}),
    }  # fmt: skip
    runs: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for index in range(bench.repeats):
        cache = bench.work / f"serve-cache-{index}"
        order = ARMS if index % 2 == 0 else (*ARMS[1:], ARMS[0])  # uncached before cached
        for arm in order:
            log = bench.work / f"serve-{arm}-{index}.log"
            runs[arm].append(time_to_ready(models[arm.split("_")[0]], cache, log))
        shutil.rmtree(cache)
    medians = {arm: median(runs[arm]) for arm in ARMS}
    shutil.rmtree(local)
    return {
        "bytes": size,
        "runs_s": runs,
        **{f"{arm}_median_s": value for arm, value in medians.items()},
        "s3_cached_over_file": round(medians["s3_cached"] / medians["file"], 2),
        "s3_uncached_over_file": round(medians["s3_uncached"] / medians["file"], 2),
    }
