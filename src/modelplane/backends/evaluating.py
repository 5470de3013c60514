"""Replaying an evaluation dataset against one replica: read the JSON lines, send each example
the way a client would (Open Inference Protocol v2, or the OpenAI API), and pair what came back
with what was expected. Shared by both backends' gates and ``modelplane evaluate``.

A line is one request and what it should answer: ``{"inputs": ..., "expected": ...}``. The inputs
are a v2 request's ``inputs`` (a list of tensors; ``"parameters"`` beside them goes along), or an
OpenAI API body (an object): with ``messages`` a chat, with ``prompt`` a completion, with
``input`` embeddings. Expected: a label or a number (a list of them, one per row of a batch), a
vector (a list of vectors), or the text a generation must produce. Generation is asked for
deterministically (temperature 0) unless the body says otherwise. With ``metric: scorer`` the
expected value is whatever the scorer reads, and the scorer judges each example's answer whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from modelplane.api import Evaluation, EvaluationMetric, EvaluationResult
from modelplane.backends.scorers import Scorer, load_scorer
from modelplane.control.evaluation import Failed, Scored, judge, mean_score, score, scorer_failed
from modelplane.errors import ScorerError, SpecError

REQUEST_SECONDS = 60.0
READY_SECONDS = 120.0
SCORER_SECONDS = 300.0  # for the whole dataset
CONCURRENCY = 4
_OPENAI_KINDS = ("messages", "prompt", "input")
_CLASSIFYING = frozenset({EvaluationMetric.ACCURACY, EvaluationMetric.F1})


@dataclass(frozen=True)
class Example:
    kind: str  # "inputs" (v2), or which of _OPENAI_KINDS the OpenAI body holds
    request: dict[str, Any]
    expected: object
    where: str = ""  # the dataset and line, for messages
    inputs: object = None  # the line's "inputs", as a scorer may read them


def read_dataset(path: Path, limit: int, name: str = "") -> list[Example]:
    """The first ``limit`` examples; SpecError naming the line that is not one."""
    where = name or str(path)
    examples: list[Example] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if len(examples) >= limit:
                break
            if not line.strip():
                continue
            try:
                document = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SpecError(f"{where} line {number}: not JSON ({exc.msg})") from exc
            examples.append(_example(document, f"{where} line {number}"))
    return examples


def _example(document: object, where: str) -> Example:
    if not isinstance(document, dict) or not {"inputs", "expected"} <= document.keys():
        raise SpecError(f'{where}: an example is an object with "inputs" and "expected"')
    inputs, expected = document["inputs"], document["expected"]
    if isinstance(inputs, list):
        request = {k: v for k, v in document.items() if k in ("inputs", "parameters")}
        return Example("inputs", request, expected, where, inputs)
    kinds = [k for k in _OPENAI_KINDS if isinstance(inputs, dict) and k in inputs]
    if len(kinds) != 1:
        raise SpecError(
            f'{where}: "inputs" is a list of v2 tensors, or an OpenAI API body with one of '
            f"{', '.join(_OPENAI_KINDS)}"
        )
    return Example(kinds[0], dict(inputs), expected, where, inputs)


async def replay(
    base_url: str, model: str, examples: Sequence[Example], metric: EvaluationMetric
) -> list[tuple[object, object]]:
    """(prediction, expected) pairs, a batch's rows each their own pair."""
    predicted = await predictions(base_url, model, examples, metric)
    return [
        pair
        for answer, example in zip(predicted, examples, strict=True)
        for pair in _pairs(answer, example.expected, metric)
    ]


async def predictions(
    base_url: str, model: str, examples: Sequence[Example], metric: EvaluationMetric
) -> list[object]:
    """What the replica answered to each example (``Failed`` where it did not)."""
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_SECONDS) as client:

        async def one(example: Example) -> object:
            async with gate:
                return await _predict(client, model, example, metric)

        return list(await asyncio.gather(*(one(e) for e in examples)))


async def _predict(
    client: httpx.AsyncClient, model: str, example: Example, metric: EvaluationMetric
) -> object:
    path, body = _request(model, example)
    try:
        reply = await client.post(path, json=body)
    except httpx.HTTPError as exc:
        return Failed(f"{path}: {exc!r}")
    if reply.status_code != 200:
        return Failed(f"{path}: HTTP {reply.status_code} {reply.text[:200]}")
    try:
        return _prediction(example.kind, reply.json(), metric)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        return Failed(f"{path}: an answer without what the metric reads ({exc!r})")


def _request(model: str, example: Example) -> tuple[str, dict[str, Any]]:
    request = example.request
    if example.kind == "inputs":
        return f"/v2/models/{model}/infer", request
    if example.kind == "input":
        return "/v1/embeddings", {**request, "model": model}
    deterministic = {"temperature": 0, "seed": 0, **request, "model": model, "stream": False}
    if example.kind == "messages":
        return "/v1/chat/completions", deterministic
    return "/v1/completions", deterministic


def _prediction(kind: str, answer: dict[str, Any], metric: EvaluationMetric) -> object:
    if kind == "messages":
        return str(answer["choices"][0]["message"]["content"])
    if kind == "prompt":
        return str(answer["choices"][0]["text"])
    if kind == "input":
        vectors = [item["embedding"] for item in answer["data"]]
        return vectors[0] if len(vectors) == 1 else vectors
    outputs = answer["outputs"]
    named = {o["name"]: o for o in outputs}
    output = named.get("label") if metric in _CLASSIFYING else None
    output = output or outputs[0]
    data, shape = output["data"], output.get("shape") or [len(output["data"])]
    if metric in _CLASSIFYING and len(shape) == 2 and shape[1] > 1:  # scores per class
        width = shape[1]
        rows = [data[i : i + width] for i in range(0, len(data), width)]
        return _one_or_many([max(range(width), key=row.__getitem__) for row in rows])
    if metric is EvaluationMetric.COSINE_SIMILARITY and len(shape) == 2:
        width = shape[1]
        return _one_or_many([data[i : i + width] for i in range(0, len(data), width)])
    return _one_or_many(list(data))


def _one_or_many(values: list[Any]) -> object:
    return values[0] if len(values) == 1 else values


def _pairs(
    predicted: object, expected: object, metric: EvaluationMetric
) -> list[tuple[object, object]]:
    """One pair per row: a batch's predictions against its list of expected outputs."""
    vector = metric is EvaluationMetric.COSINE_SIMILARITY
    if (
        not isinstance(expected, list)
        or not expected
        or (vector and not isinstance(expected[0], list))
    ):
        return [(predicted, expected)]
    if isinstance(predicted, Failed):
        return [(predicted, e) for e in expected]
    if not isinstance(predicted, list) or len(predicted) != len(expected):
        wrong = Failed(f"{len(expected)} expected outputs, the answer had {predicted!r:.80}")
        return [(wrong, e) for e in expected]
    return list(zip(predicted, expected, strict=True))


async def evaluate(
    gate: Evaluation,
    examples: Sequence[Example],
    model: str,
    canary_url: str,
    stable_url: str | None = None,
) -> EvaluationResult:
    """The gate's verdict on the replica at ``canary_url`` (and, relative to the stable one, on
    the replica at ``stable_url`` too); a scorer that cannot judge fails it with its own
    reason, before any replay when it cannot be imported."""
    try:
        scorer = await asyncio.to_thread(load_scorer, gate.scorer) if gate.scorer else None
        canary = await _scored(gate, scorer, examples, model, canary_url)
        stable: Scored | None = None
        if gate.relative_to_stable and stable_url is not None:
            stable = await _scored(gate, scorer, examples, model, stable_url)
    except ScorerError as exc:
        return scorer_failed(gate, str(exc))
    return judge(gate, canary, stable)


async def _scored(
    gate: Evaluation, scorer: Scorer | None, examples: Sequence[Example], model: str, url: str
) -> Scored:
    if not await _answers(url, model):
        return Scored(None, 0, f"the replica at {url} did not answer ready in {READY_SECONDS:g} s")
    if scorer is None:
        return score(gate.metric, await replay(url, model, examples, gate.metric))
    answers = await predictions(url, model, examples, gate.metric)
    # The user's code may be slow (a judge of its own): off the event loop the backends share,
    # and bounded, so a scorer that hangs ends the gate instead of holding the rollout (its
    # thread cannot be stopped; it is left to finish on its own).
    judging = asyncio.to_thread(_judged, scorer, examples, answers)
    try:
        return mean_score(await asyncio.wait_for(judging, SCORER_SECONDS))
    except TimeoutError:
        raise ScorerError(
            f"scorer {gate.scorer} did not judge {len(examples)} examples within "
            f"{SCORER_SECONDS:g} s"
        ) from None


def _judged(
    scorer: Scorer, examples: Sequence[Example], answers: Sequence[object]
) -> list[float | Failed]:
    return [
        answer
        if isinstance(answer, Failed)
        else scorer(answer, example.expected, example.inputs, example.where)
        for answer, example in zip(answers, examples, strict=True)
    ]


async def _answers(url: str, model: str) -> bool:
    """Whether the replica answers ready, waited for: a pod is Ready by its probe's last
    verdict, which may come before (or lag behind) the replica itself."""
    deadline = asyncio.get_running_loop().time() + READY_SECONDS
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"/v2/models/{model}/ready")).status_code == 200:
                    return True
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.5)
