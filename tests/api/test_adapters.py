"""LoRA adapters in the Model: checked on apply, and no part of the revision."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.api import parse_model, revision_digest
from tests.api.test_model import problems


def chat(name: str = "chat", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "source": {"uri": "file:///m/chat.gguf"},
        "format": "llamacpp",
        "task": "chat",
        **spec,
    }
    return {"apiVersion": "modelplane.io/v1alpha1", "kind": "Model",
            "metadata": {"name": name}, "spec": base}  # fmt: skip


def adapter(name: str, uri: str = "file:///m/a.gguf", **source: Any) -> dict[str, Any]:
    return {"name": name, "source": {"uri": uri, **source}}


def test_adapters_and_their_cap_keep_the_revision() -> None:
    base = revision_digest(parse_model(chat()).spec)
    with_adapters = chat(adapters=[adapter("pirate"), adapter("poet", "https://h/poet.gguf")])
    assert revision_digest(parse_model(with_adapters).spec) == base
    capped = chat(runtime={"maxLoadedAdapters": 9})
    assert revision_digest(parse_model(capped).spec) == base
    # The rest of runtime still makes one.
    other = chat(runtime={"maxLoadedAdapters": 9, "parameters": {"parallel": "8"}})
    assert revision_digest(parse_model(other).spec) != base


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ({"adapters": [adapter("a"), adapter("a")]}, "adapter names must be unique; repeated: a"),
        ({"adapters": [adapter("chat")]}, "may not be named 'chat', the Model's own name"),
        ({"adapters": [adapter("a b")]}, "spec.adapters.0.name: String should match pattern"),
        ({"format": "vllm", "adapters": [adapter("a")]}, "not by format 'vllm'"),
        ({"engine": {"external": True}, "adapters": [adapter("a")]}, "not by engine.external"),
        ({"task": "embedding", "adapters": [adapter("a")]}, "need a chat or text-generation task"),
        (
            {"adapters": [adapter("a", credentials={"secret": "s"})]},
            "an adapter's source takes no credentials",
        ),
        ({"adapters": [adapter("a", "ftp://h/a")]}, "scheme 'ftp' is not supported"),
        ({"runtime": {"maxLoadedAdapters": 0}}, "runtime.maxLoadedAdapters"),
    ],
)
def test_bad_adapters_are_refused_naming_the_field(spec: dict[str, Any], said: str) -> None:
    assert any(said in problem for problem in problems(chat(**spec))), problems(chat(**spec))
