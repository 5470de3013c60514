"""The evaluation gate's replay against real runtimes, per task the OpenAI API serves: chat and
completions judged by exact match, embeddings by cosine similarity. Expected answers are the
model's own (seeded weights, greedy decoding): a faithful dataset scores 1, a wrong one less."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelplane.api import Evaluation, EvaluationMetric, EvaluationResult
from modelplane.backends.evaluating import evaluate, read_dataset
from tests.processes import RuntimeProcess

PROMPTS = ["Tell me about the sea.", "Name a colour.", "Count to three."]


def gate(metric: EvaluationMetric, threshold: float) -> Evaluation:
    return Evaluation(dataset="file:///unused.jsonl", metric=metric, threshold=threshold)


def judged(
    path: Path, lines: list[dict[str, Any]], metric: EvaluationMetric, runtime: RuntimeProcess,
    model: str, threshold: float,
) -> EvaluationResult:  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    examples = read_dataset(path, 100)
    return asyncio.run(evaluate(gate(metric, threshold), examples, model, runtime.url))


def test_chat_and_completions_are_judged_by_exact_match(
    chat_runtime: RuntimeProcess, tmp_path: Path
) -> None:
    bodies = [{"messages": [{"role": "user", "content": p}], "max_tokens": 6} for p in PROMPTS]
    answers = [
        httpx.post(f"{chat_runtime.url}/v1/chat/completions", timeout=60,
                   json={**b, "model": "tiny-chat", "temperature": 0, "seed": 0})
        .json()["choices"][0]["message"]["content"]
        for b in bodies
    ]  # fmt: skip
    faithful = [{"inputs": b, "expected": a} for b, a in zip(bodies, answers, strict=True)]
    passed = judged(tmp_path / "chat.jsonl", faithful, EvaluationMetric.EXACT_MATCH,
                    chat_runtime, "tiny-chat", 1.0)  # fmt: skip
    assert (passed.passed, passed.value, passed.examples) == (True, 1.0, 3)
    wrong = [{**faithful[0], "expected": "certainly not this"}, *faithful[1:]]
    failed = judged(tmp_path / "wrong.jsonl", wrong, EvaluationMetric.EXACT_MATCH,
                    chat_runtime, "tiny-chat", 0.9)  # fmt: skip
    assert not failed.passed
    assert failed.value == pytest.approx(2 / 3)
    prompt = {"prompt": PROMPTS[0], "max_tokens": 6}
    text = httpx.post(f"{chat_runtime.url}/v1/completions", timeout=60,
                      json={**prompt, "model": "tiny-chat", "temperature": 0, "seed": 0}
                      ).json()["choices"][0]["text"]  # fmt: skip
    completed = judged(tmp_path / "completions.jsonl", [{"inputs": prompt, "expected": text}],
                       EvaluationMetric.EXACT_MATCH, chat_runtime, "tiny-chat", 1.0)  # fmt: skip
    assert completed.passed


def test_embeddings_are_judged_by_cosine_similarity(
    embed_runtime: RuntimeProcess, tmp_path: Path
) -> None:
    vectors = [
        httpx.post(f"{embed_runtime.url}/v1/embeddings", timeout=60,
                   json={"model": "tiny-embed", "input": p}).json()["data"][0]["embedding"]
        for p in PROMPTS
    ]  # fmt: skip
    faithful = [{"inputs": {"input": p}, "expected": v}
                for p, v in zip(PROMPTS, vectors, strict=True)]  # fmt: skip
    passed = judged(tmp_path / "embed.jsonl", faithful, EvaluationMetric.COSINE_SIMILARITY,
                    embed_runtime, "tiny-embed", 0.999)  # fmt: skip
    assert passed.passed
    assert passed.value == pytest.approx(1.0, abs=1e-6)
    flipped = [{**faithful[0], "expected": [-x for x in vectors[0]]}, *faithful[1:]]
    failed = judged(tmp_path / "flipped.jsonl", flipped, EvaluationMetric.COSINE_SIMILARITY,
                    embed_runtime, "tiny-embed", 0.999)  # fmt: skip
    assert not failed.passed
    assert failed.value == pytest.approx(1 / 3, abs=1e-6)  # (-1 + 1 + 1) / 3
