"""The LLM examples built by their own script, and runtimes serving them as real processes."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ROOT
from tests.processes import RuntimeProcess, serving


def written_by(script: str, out: Path) -> Path:
    """``out``, after the example script ``examples/llm/<script>`` wrote into it."""
    path = ROOT / "examples" / "llm" / script
    subprocess.run([sys.executable, str(path), "--out", str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-chat.gguf, chat.yaml and embedding.yaml, written as a user would write them."""
    return written_by("make_models.py", tmp_path_factory.mktemp("llm"))


def chat_variant(llm_dir: Path, name: str, extra: str) -> Path:
    """The chat example under another name with ``extra`` spec lines; a ``generation`` block
    there replaces the example's own."""
    text = (llm_dir / "chat.yaml").read_text().replace("name: tiny-chat", f"name: {name}")
    if extra.lstrip().startswith("generation:"):
        text = text.partition("  generation:\n")[0]
    path = llm_dir / f"{name}.yaml"
    path.write_text(text + extra)
    return path


EXAMPLE_SCALING = "  scaling:\n    minReplicas: 1\n    maxReplicas: 2\n"
# One slot per replica, scaled on its waiting list (one per replica), never on in-flight
# requests while the replicas report (targetInFlight 100).
SCALED_ON_WAITING = """\
  scaling:
    minReplicas: 1
    maxReplicas: 2
    metric: waiting
    target: 1
    targetInFlight: 100
  runtime:
    parameters: {parallel: "1", maxWaiting: "32"}
"""


def scaled_on_waiting(llm_dir: Path, name: str, namespace: str = "default") -> str:
    """The chat example as a Model ``namespace/name`` that scales on its waiting requests."""
    text = (llm_dir / "chat.yaml").read_text()
    assert EXAMPLE_SCALING in text
    named = f"  name: {name}\n  namespace: {namespace}\n"
    return text.replace("  name: tiny-chat\n", named).replace(EXAMPLE_SCALING, SCALED_ON_WAITING)


@contextlib.contextmanager
def chatting(base_url: str, model: str, clients: int) -> Iterator[list[int]]:
    """``clients`` threads chatting with ``model`` at ``base_url`` (``…/v1``) one answer after
    another until the block ends; yields the tokens of each answer, as they come."""
    client = openai_client(base_url)
    ended, answered = threading.Event(), list[int]()
    story = [{"role": "user", "content": "Tell me a long story about the sea."}]

    def chat() -> None:
        while not ended.is_set():
            reply = client.chat.completions.create(model=model, messages=story, max_tokens=128)
            answered.append(reply.usage.completion_tokens if reply.usage else 0)

    threads = [threading.Thread(target=chat) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield answered
    finally:
        ended.set()
        for thread in threads:
            thread.join(timeout=60)


@pytest.fixture(scope="session")
def chat_runtime(
    llm_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RuntimeProcess]:
    with serving(llm_dir / "chat.yaml", tmp_path_factory.mktemp("chat") / "serve.log") as runtime:
        yield runtime


@pytest.fixture(scope="session")
def embed_runtime(
    llm_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RuntimeProcess]:
    log = tmp_path_factory.mktemp("embed") / "serve.log"
    with serving(llm_dir / "embedding.yaml", log) as runtime:
        yield runtime


_CLIENTS: dict[str, openai.OpenAI] = {}


def openai_client(base_url: str) -> openai.OpenAI:
    """The official client for ``base_url`` (``…/v1``), one per URL, closed after each module."""
    found = _CLIENTS.get(base_url)
    if found is None:
        found = _CLIENTS[base_url] = openai.OpenAI(
            base_url=base_url, api_key="unused", max_retries=0
        )
    return found


@pytest.fixture(autouse=True, scope="module")
def _close_clients() -> Iterator[None]:
    yield
    for made in _CLIENTS.values():
        made.close()
    _CLIENTS.clear()


def complete(gateway: str, model: str) -> httpx.Response:
    """A short greedy completion of ``model`` (a Model or an adapter) through ``gateway``."""
    body = {"model": model, "prompt": "Tell me a story", "max_tokens": 12, "temperature": 0}
    return httpx.post(f"{gateway}/v1/completions", json=body, timeout=60)


def completion_text(reply: httpx.Response) -> str:
    assert reply.status_code == 200, reply.text
    return str(reply.json()["choices"][0]["text"])


def served_models(gateway: str) -> dict[str, Any]:
    """The OpenAI models ``gateway`` lists, each with its parent (None but for adapters)."""
    listed = httpx.get(f"{gateway}/v1/models", timeout=10).json()["data"]
    return {m["id"]: m.get("parent") for m in listed}
