"""Requests and models the end-to-end tests share: steady load through a gateway, and a model
whose every request fails on demand (for rollbacks)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.conftest import MODELS

ROW = [5.1, 3.5, 1.4, 0.2]
BODY = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": ROW}]}


@contextmanager
def steady_load(url: str, clients: int = 3) -> Iterator[Counter[str]]:
    """``clients`` sending ``BODY`` to ``url`` back to back: outcomes by status and revision."""
    outcomes: Counter[str] = Counter()
    stop = threading.Event()

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


def flaky_manifest(name: str, fail: bool, rollout: str, namespace: str = "default") -> str:
    """A python-format Model that fails every request when ``fail``; ``rollout`` is spec
    lines (indented two spaces) appended to it."""
    return (
        f"apiVersion: modelplane.io/v1alpha1\nkind: Model\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n"
        f"  source: {{uri: '{(MODELS / 'flaky.py').as_uri()}'}}\n  format: python\n"
        f"  task: classification\n  runtime: {{parameters: {{fail: '{str(fail).lower()}'}}}}\n"
        + rollout
    )
