"""Embeddings from a GGUF model, over the OpenAI API and over v2, from one batched data plane."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import openai
import pytest

from tests.llm.conftest import openai_client
from tests.processes import RuntimeProcess


def client(runtime: RuntimeProcess) -> openai.OpenAI:
    return openai_client(f"{runtime.url}/v1")


def test_embeddings_have_the_api_shape_and_are_unit_vectors(
    embed_runtime: RuntimeProcess,
) -> None:
    texts = ["the weather is sunny", "a small robot paints the sky", "the weather is sunny"]
    answer = client(embed_runtime).embeddings.create(model="tiny-embed", input=texts)
    assert answer.object == "list"
    assert answer.model == "tiny-embed"
    assert [d.index for d in answer.data] == [0, 1, 2]
    vectors = np.array([d.embedding for d in answer.data])
    assert vectors.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)  # same text, same vector
    assert not np.allclose(vectors[0], vectors[1])
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 6


def test_base64_encoding_carries_the_same_floats(embed_runtime: RuntimeProcess) -> None:
    body = {"model": "tiny-embed", "input": "hello there"}
    url = f"{embed_runtime.url}/v1/embeddings"
    as_floats = httpx.post(url, json=body).json()["data"][0]["embedding"]
    packed = httpx.post(url, json={**body, "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, as_floats, rtol=1e-6)


def test_the_same_model_answers_over_v2(embed_runtime: RuntimeProcess) -> None:
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["hello"]}]}
    reply = httpx.post(f"{embed_runtime.url}/v2/models/tiny-embed/infer", json=body)
    assert reply.status_code == 200, reply.text
    outputs = {o["name"]: o for o in reply.json()["outputs"]}
    assert outputs["embedding"]["shape"] == [1, 64]
    via_openai = client(embed_runtime).embeddings.create(model="tiny-embed", input="hello")
    np.testing.assert_allclose(
        outputs["embedding"]["data"], via_openai.data[0].embedding, atol=1e-6
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "tiny-embed", "input": ""}, "empty strings"),
        ({"model": "tiny-embed", "input": []}, "at least 1"),
        ({"model": "tiny-embed", "input": "x", "encoding_format": "hex"}, "float"),
        ({"model": "tiny-embed", "input": "x", "dimensions": 8}, "64 dimensions"),
    ],
)
def test_bad_embedding_requests_are_refused(
    embed_runtime: RuntimeProcess, body: dict[str, object], fragment: str
) -> None:
    reply = httpx.post(f"{embed_runtime.url}/v1/embeddings", json=body)
    assert reply.status_code == 400
    assert fragment in reply.json()["error"]["message"]


def test_chat_on_an_embedding_model_is_refused(embed_runtime: RuntimeProcess) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client(embed_runtime).chat.completions.create(
            model="tiny-embed", messages=[{"role": "user", "content": "hi"}]
        )
    assert "serves task 'embedding'" in refused.value.message


def test_requests_are_counted_by_outcome(embed_runtime: RuntimeProcess) -> None:
    def counted(outcome: str) -> float:
        text = httpx.get(f"{embed_runtime.url}/metrics").text
        line = f'modelplane_runtime_requests_total{{model="tiny-embed",outcome="{outcome}"}}'
        found = [row for row in text.splitlines() if row.startswith(line)]
        return float(found[0].split()[-1]) if found else 0.0

    before = counted("success"), counted("invalid")
    client(embed_runtime).embeddings.create(model="tiny-embed", input="counted")
    httpx.post(f"{embed_runtime.url}/v1/embeddings", json={"model": "tiny-embed", "input": ""})
    assert (counted("success"), counted("invalid")) == (before[0] + 1, before[1] + 1)
