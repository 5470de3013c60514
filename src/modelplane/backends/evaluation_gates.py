"""Evaluation gates as a backend runs them: once a gated canary has a ready replica, its
dataset is fetched (by a ``modelplane fetch`` child holding the Model's credentials, as an
artifact is) and replayed against it, off the reconcile pass; the verdict is kept until the
rollout records it, and the Model is woken when it is in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from modelplane.api import Evaluation, EvaluationResult, Model
from modelplane.artifacts.isolated import fetch_in_child
from modelplane.artifacts.paths import Limits
from modelplane.artifacts.sources import default_cache_dir
from modelplane.backends.evaluating import evaluate, read_dataset
from modelplane.backends.pinning import Credentials
from modelplane.control.planning import evaluation_due
from modelplane.errors import ModelplaneError

log = logging.getLogger(__name__)


class EvaluationGates:
    def __init__(self, credentials: Credentials, wake: Callable[[str], None]) -> None:
        self.credentials, self.wake = credentials, wake
        self._verdicts: dict[tuple[str, str], EvaluationResult] = {}
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}

    def observe(
        self, model: Model, canary_url: str | None, stable_url: str | None
    ) -> tuple[str, EvaluationResult | None]:
        """The revision the gate waits on and its verdict (None while it is replayed, or until
        ``canary_url``, a ready replica of it, is known)."""
        revision = evaluation_due(model)
        gate = model.spec.rollout.evaluation
        if revision is None or gate is None:
            self.forget(model.key)
            return "", None
        key = (model.key, revision)
        if key in self._verdicts:
            return revision, self._verdicts[key]
        if key not in self._running and canary_url is not None:
            run = self._judge(model, gate, key, canary_url, stable_url)
            self._running[key] = asyncio.get_running_loop().create_task(run)
        return revision, None

    def forget(self, key: str) -> None:
        for pair in [p for p in self._verdicts if p[0] == key]:
            del self._verdicts[pair]
        for pair in [p for p in self._running if p[0] == key]:
            self._running.pop(pair).cancel()

    async def _judge(
        self,
        model: Model,
        gate: Evaluation,
        key: tuple[str, str],
        canary_url: str,
        stable_url: str | None,
    ) -> None:
        try:
            dataset = await self._dataset(model, gate)
            examples = read_dataset(dataset, gate.max_examples, gate.dataset)
            verdict = await evaluate(gate, examples, model.metadata.name, canary_url, stable_url)
        except ModelplaneError as exc:
            verdict = EvaluationResult(
                passed=False, metric=gate.metric.value, threshold=gate.threshold,
                message=f"dataset {gate.dataset}: {exc}",
            )  # fmt: skip
        except OSError as exc:
            verdict = EvaluationResult(
                passed=False, metric=gate.metric.value, threshold=gate.threshold,
                message=f"dataset {gate.dataset} cannot be read: {exc}",
            )  # fmt: skip
        log.info("evaluation of %s %s: %s", key[0], key[1], verdict.message)
        self._verdicts[key] = verdict
        self._running.pop(key, None)
        self.wake(key[0])

    async def _dataset(self, model: Model, gate: Evaluation) -> Path:
        async with self.credentials(model) as env:
            return await asyncio.to_thread(fetch_dataset, model, gate.dataset, env)


def fetch_dataset(model: Model, uri: str, env: dict[str, str]) -> Path:
    """The dataset at ``uri`` as a local JSON lines file, fetched like ``model``'s artifact (by a
    child given ``env``, the Model's credentials) and cached by digest."""
    source = model.spec.source.model_copy(update={"uri": uri, "sha256": None})
    fetching = model.model_copy(update={"spec": model.spec.model_copy(update={"source": source})})
    found = fetch_in_child(fetching, env, default_cache_dir(), Path.cwd(), Limits())
    if found.path is None:
        raise FileNotFoundError(f"{uri} fetched to nothing")
    path = found.path
    if path.is_dir():
        files = sorted(path.rglob("*.jsonl"))
        if len(files) != 1:
            raise FileNotFoundError(f"{uri} holds {len(files)} .jsonl files, not one")
        path = files[0]
    return path
