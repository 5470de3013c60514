"""The evaluation gate's replay against real runtimes, per task the OpenAI API serves: chat and
completions judged by exact match or by a scorer (modelplane's own, or a team's module on the
path), embeddings by cosine similarity. Expected answers are the model's own (seeded weights,
greedy decoding): a faithful dataset scores 1, a wrong one less."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelplane.api import Evaluation, EvaluationMetric, EvaluationResult
from modelplane.backends import evaluating
from modelplane.backends.evaluating import evaluate, read_dataset
from tests.processes import RuntimeProcess

PROMPTS = ["Tell me about the sea.", "Name a colour.", "Count to three."]


def gate(metric: EvaluationMetric, threshold: float, scorer: str | None = None) -> Evaluation:
    return Evaluation(
        dataset="file:///unused.jsonl", metric=metric, threshold=threshold, scorer=scorer
    )


def judged(
    path: Path, lines: list[dict[str, Any]], metric: EvaluationMetric, runtime: RuntimeProcess,
    model: str, threshold: float, scorer: str | None = None,
) -> EvaluationResult:  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    examples = read_dataset(path, 100)
    return asyncio.run(evaluate(gate(metric, threshold, scorer), examples, model, runtime.url))


def chat_answers(runtime: RuntimeProcess) -> tuple[list[dict[str, Any]], list[str]]:
    """Chat bodies for ``PROMPTS`` and what tiny-chat answers them, asked as the gate asks."""
    bodies = [{"messages": [{"role": "user", "content": p}], "max_tokens": 6} for p in PROMPTS]
    answers = [
        httpx.post(f"{runtime.url}/v1/chat/completions", timeout=60,
                   json={**b, "model": "tiny-chat", "temperature": 0, "seed": 0})
        .json()["choices"][0]["message"]["content"]
        for b in bodies
    ]  # fmt: skip
    return bodies, answers


def test_chat_and_completions_are_judged_by_exact_match(
    chat_runtime: RuntimeProcess, tmp_path: Path
) -> None:
    bodies, answers = chat_answers(chat_runtime)
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


def test_answers_are_judged_by_modelplanes_scorers(
    chat_runtime: RuntimeProcess, tmp_path: Path
) -> None:
    bodies, answers = chat_answers(chat_runtime)
    # The first word of each answer, shouted: contained, whatever the case.
    words = [a.split()[0].upper() for a in answers]
    lines = [{"inputs": b, "expected": w} for b, w in zip(bodies, words, strict=True)]
    lines[1]["expected"] = ["certainly not this", "nor this"]
    contained = judged(tmp_path / "contains.jsonl", lines, EvaluationMetric.SCORER,
                       chat_runtime, "tiny-chat", 0.6, "modelplane.scoring:contains")  # fmt: skip
    assert (contained.passed, contained.examples) == (True, 3)
    assert contained.value == pytest.approx(2 / 3)
    assert contained.message.startswith("scorer modelplane.scoring:contains 0.6667 over 3")
    # The whole answer and one made-up word beside it: partial credit, under a 0.99 threshold.
    lines = [
        {"inputs": b, "expected": f"{a} zyzzyva"} for b, a in zip(bodies, answers, strict=True)
    ]
    overlap = judged(tmp_path / "f1.jsonl", lines, EvaluationMetric.SCORER, chat_runtime,
                     "tiny-chat", 0.99, "modelplane.scoring:token_f1")  # fmt: skip
    assert overlap.value is not None
    assert 0.5 < overlap.value < 1
    assert not overlap.passed


def test_a_teams_scorer_reads_its_expected_values_and_the_inputs(
    chat_runtime: RuntimeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))  # installed here, as the gate's scorer must be
    (tmp_path / "team_rubric.py").write_text(
        "def brief(answer, expected, inputs):\n"
        "    prompt = inputs['messages'][-1]['content']\n"
        "    return float(prompt not in answer and len(answer.split()) <= expected['maxWords'])\n"
        "def fussy(answer, expected):\n"
        "    if expected == 'unreadable':\n"
        "        raise ValueError('no rubric for this one')\n"
        "    return 1.0\n"
    )
    bodies, _ = chat_answers(chat_runtime)
    limits = [{"maxWords": 50}, {"maxWords": 0}, {"maxWords": 50}]
    lines = [{"inputs": b, "expected": x} for b, x in zip(bodies, limits, strict=True)]
    brief = judged(tmp_path / "brief.jsonl", lines, EvaluationMetric.SCORER, chat_runtime,
                   "tiny-chat", 0.9, "team_rubric:brief")  # fmt: skip
    assert (brief.passed, brief.reason) == (False, "")
    assert brief.value == pytest.approx(2 / 3)
    rubrics = ["", "unreadable", ""]
    fussy_lines = [{"inputs": b, "expected": x} for b, x in zip(bodies, rubrics, strict=True)]
    path = tmp_path / "fussy.jsonl"
    fussy = judged(path, fussy_lines, EvaluationMetric.SCORER, chat_runtime, "tiny-chat", 0.5,
                   "team_rubric:fussy")  # fmt: skip
    assert (fussy.passed, fussy.reason, fussy.value) == (False, "ScorerFailed", None)
    assert fussy.message == (
        f"scorer team_rubric:fussy raised on {path} line 2: ValueError: no rubric for this one"
    )
    # One that never finishes ends the gate at the limit instead of holding the rollout.
    (tmp_path / "stuck_rubric.py").write_text(
        "import threading\n"
        "def wait(answer, expected):\n"
        "    threading.Event().wait(5)\n"
        "    return 1.0\n"
    )
    monkeypatch.setattr(evaluating, "SCORER_SECONDS", 0.5)
    stuck = judged(tmp_path / "stuck.jsonl", lines, EvaluationMetric.SCORER, chat_runtime,
                   "tiny-chat", 0.5, "stuck_rubric:wait")  # fmt: skip
    assert (stuck.passed, stuck.reason) == (False, "ScorerFailed")
    assert stuck.message == "scorer stuck_rubric:wait did not judge 3 examples within 0.5 s"


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
