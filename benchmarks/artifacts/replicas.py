"""Figure 3: eight replicas of one Model started at once by ``modelplane up`` from a pinned
``s3://`` artifact behind a counting proxy: how many bytes the store sent, against the
artifact's size (target: once, the replicas sharing the machine's cache), and the time from
apply to all eight Ready."""

from __future__ import annotations

import time
from typing import Any

import httpx
from tests.artifacts.proxy import CountingProxy
from tests.artifacts.s3server import BUCKET

from benchmarks.artifacts.bench import Bench, wait_for
from benchmarks.artifacts.data import MiB, upload, write_onnx_model
from benchmarks.platform.run import API, Up, model
from modelplane.artifacts import Limits, digest_of

NAME = "eight"
PREFIX = "replicas"
REPLICAS = 8
READY_SECONDS = 300


def all_ready(up: Up) -> bool:
    status = httpx.get(f"{up.api}{API}/{NAME}", timeout=5).json()["status"]
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
    )
    revisions = status.get("revisions", [])
    return ready and any(r.get("readyReplicas") == REPLICAS for r in revisions)


def document(uri: str, endpoint: str, digest: str) -> dict[str, Any]:
    return model(
        NAME,
        {
            "source": {"uri": uri, "endpoint": endpoint, "sha256": digest},
            "task": "regression",
            "scaling": {"minReplicas": REPLICAS, "maxReplicas": REPLICAS},
        },
    )


def figure(bench: Bench) -> dict[str, Any]:
    local = bench.work / "replica-model"
    size = write_onnx_model(local, bench.replica_mib)
    upload(bench.server.client(), BUCKET, local, PREFIX)
    digest = digest_of(local, Limits(), local.as_uri())
    proxy = CountingProxy(("127.0.0.1", bench.server.port))
    (bench.work / "up").mkdir()
    up = Up(bench.work / "up" / "state", "--cache-dir", str(bench.work / "up-cache"))
    try:
        started = time.perf_counter()
        up.apply(document(f"s3://{BUCKET}/{PREFIX}/", proxy.endpoint, digest))
        try:
            wait_for(lambda: all_ready(up), READY_SECONDS, f"{REPLICAS} replicas ready", 0.1)
        except RuntimeError as exc:
            log = (bench.work / "up" / "up.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{exc}; modelplane up said:\n{log}") from exc
        seconds = time.perf_counter() - started
        sent = proxy.received
        body = {"inputs": [{"name": "row", "datatype": "INT64", "shape": [1], "data": [0]}]}
        reply = httpx.post(f"{up.gateway}/v2/models/{NAME}/infer", json=body, timeout=30)
        if reply.status_code != 200:
            raise RuntimeError(f"the model did not answer: {reply.status_code} {reply.text}")
    finally:
        up.stop()
        proxy.stop()
    return {
        "artifact_bytes": size,
        "replicas": REPLICAS,
        "store_sent_bytes": sent,  # HTTP headers and the listing included
        "store_sent_over_artifact": round(sent / size, 4),
        "ranged_gets": proxy.ranged_gets,
        "apply_to_all_ready_s": round(seconds, 2),
        "artifact_mib": round(size / MiB, 1),
    }
