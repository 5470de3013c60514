"""Requests and models the end-to-end tests share: steady load through a gateway, and a model
whose every request fails on demand (for rollbacks)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import MODELS

ROW = [5.1, 3.5, 1.4, 0.2]
BODY = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": ROW}]}


@contextmanager
def steady_load(url: str, clients: int = 3) -> Iterator[Counter[str]]:
    """``clients`` sending ``BODY`` to ``url`` back to back: outcomes by status and revision.

    The load starts once a revision answers ``url`` (successfully or not): a Model's Ready
    condition can come before a gateway watching the cluster has its route, and the tests
    measure a served model, not that lag."""
    outcomes: Counter[str] = Counter()
    stop = threading.Event()
    _wait_until_served(url)

    def run() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                reply = client.post(url, json=BODY)
                outcomes[f"{reply.status_code} {reply.headers.get('x-modelplane-revision')}"] += 1

    workers = [threading.Thread(target=run) for _ in range(clients)]
    for worker in workers:
        worker.start()
    try:
        yield outcomes
    finally:
        stop.set()
        for worker in workers:
            worker.join()


def _wait_until_served(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    reply = None
    while time.monotonic() < deadline:
        reply = httpx.post(url, json=BODY, timeout=30)
        if "x-modelplane-revision" in reply.headers:
            return
        time.sleep(0.2)
    raise AssertionError(f"no revision answered {url} within {timeout} s: {reply and reply.text}")


def flaky_manifest(
    name: str,
    fail: bool,
    rollout: str,
    namespace: str = "default",
    label: int = 0,
    annotations: dict[str, str] | None = None,
    delay_ms: int = 0,
) -> str:
    """A python-format Model answering ``label`` that fails every request when ``fail`` (and
    takes ``delay_ms`` over each); ``rollout`` is spec lines (indented two spaces) appended."""
    noted = f", annotations: {json.dumps(annotations)}" if annotations else ""
    labelled = f", label: '{label}'" if label else ""
    labelled += f", delayMs: '{delay_ms}'" if delay_ms else ""
    return (
        f"apiVersion: modelplane.io/v1alpha1\nkind: Model\n"
        f"metadata: {{name: {name}, namespace: {namespace}{noted}}}\nspec:\n"
        f"  source: {{uri: '{(MODELS / 'flaky.py').as_uri()}'}}\n  format: python\n"
        f"  task: classification\n"
        f"  runtime: {{parameters: {{fail: '{str(fail).lower()}'{labelled}}}}}\n" + rollout
    )


# Three iris rows; the model under test answers one constant label for every row.
IRIS_DATASET = [
    {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}],
     "expected": 0},
    {"inputs": [{"name": "X", "datatype": "FP32", "shape": [2, 4],
                 "data": [4.9, 3.0, 1.4, 0.2, 6.7, 3.1, 4.4, 1.4]}], "expected": [0, 1]},
]  # fmt: skip


def gated_manifest(
    label: int,
    *,
    relative: bool = False,
    dataset: Path,
    extra: str = "",
    namespace: str = "default",
    scorer: str = "",
) -> str:
    """A Model ``gated`` answering ``label`` for every row, behind an evaluation gate on
    ``dataset`` (accuracy, or the mean of ``scorer``: at least 0.6, or at most 0.1 under the
    stable revision's)."""
    # Absolute: at least 0.6; relative: at most 0.1 under the stable revision's accuracy.
    metric = f"scorer, scorer: '{scorer}'" if scorer else "accuracy"
    gate = f"{{dataset: '{dataset.as_uri()}', metric: {metric}"
    gate += ", threshold: 0.1, relativeToStable: true}" if relative else ", threshold: 0.6}"
    return (
        "apiVersion: modelplane.io/v1alpha1\nkind: Model\n"
        f"metadata: {{name: gated, namespace: {namespace}}}\nspec:\n"
        f"  source: {{uri: '{(MODELS / 'flaky.py').as_uri()}'}}\n  format: python\n"
        f"  task: classification\n  runtime: {{parameters: {{label: '{label}'}}}}\n"
        "  rollout:\n    steps: [{weight: 50, pauseSeconds: 1}]\n"
        f"    analysis: {{minRequests: 5, maxLatencyP99Ms: 2000}}\n    evaluation: {gate}\n" + extra
    )


def write_iris_dataset(path: Path) -> Path:
    """``IRIS_IRIS_DATASET`` as JSON lines at ``path``."""
    path.write_text("".join(json.dumps(line) + "\n" for line in IRIS_DATASET))
    return path
