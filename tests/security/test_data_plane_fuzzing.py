"""Property-based fuzzing of the data plane from its own OpenAPI descriptions (Schemathesis):
real ``modelplane serve`` runtimes of the iris example (v2) and of the LLM examples (the OpenAI
API: chat, embeddings), and the gateway of a real ``modelplane up --auth`` routing iris and the
chat model, called with an admin key. Every check: no server error, every reply as described
(status, content type, headers, body schema, each server-sent event), invalid input refused,
valid input taken, auth enforced where it is declared.

Bounded for the suite: the fuzzing phase, a few examples per operation, a fixed seed (about 10
to 20 s each). ``scripts/fuzz-api`` adds the coverage phase (boundary and invalid values of
every parameter and field, and every method a path does not take) and the stateful phase, with
fresh seeds. What fuzzing found is held fixed by the last tests here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.llm.conftest import written_by
from tests.platform.conftest import Platform, wait_for
from tests.processes import RuntimeProcess, serving
from tests.security.conftest import admin_key, generated, schemathesis

# What the descriptions cannot say, said to the fuzzer: a v2 tensor's data must hold as many
# values as the product of its shape, a relation between two fields that JSON Schema cannot
# express, so a request generated from the schema alone is mostly, and rightly, refused.
INFER = """
[[operations]]
include-path-regex = "/infer$"
checks.positive_data_acceptance.enabled = false
"""


def settings(models: list[str], v2: str, version: str, namespace: str = "default") -> str:
    """The fuzzer's settings for a surface serving ``models``: the v2 paths name the model
    ``v2`` (and ``version``), most OpenAI API requests one of ``models``.

    Named, not drawn: Schemathesis excuses a 404 for a method a path does not take when the
    path's parameters were generated, as they may name nothing; named, it must be 405. Other
    names are a plain 404, which the regression tests below cover."""
    return (
        INFER
        + f"""
[dictionaries.models]
values = {models!r}

[[operations]]
include-path-regex = "^/v2/models/"
parameters = {{ "path.name" = "{v2}", "path.namespace" = "{namespace}", \
"path.version" = "{version}" }}

[[operations]]
include-path-regex = "^/v1/"
parameters = {{ "body.model" = {{ dictionary = "models", probability = 0.8 }}, \
"path.model" = {{ dictionary = "models", probability = 0.8 }} }}
"""
    )


RUNTIME_SETTINGS = settings(["iris"], "iris", "1")
CHAT_SETTINGS = settings(["tiny-chat"], "tiny-chat", "1")
EMBEDDING_SETTINGS = settings(["tiny-embed"], "tiny-embed", "1")
# The gateway routes whatever models the platform serves; its description cannot name them.
# Here iris (v2 only) and the chat model, each in its first revision. Of an OpenAI API body it
# describes what it reads itself; the runtime behind it validates the rest, and refuses what is
# out of the model's bounds (a role it does not know, max_tokens over its limit, embeddings of a
# chat model).
GATEWAY_SETTINGS = (
    settings(["iris", "tiny-chat"], "iris", "iris-r1")
    + """
[[operations]]
include-path-regex = "^/v1/(chat/completions|completions|embeddings)$"
checks.positive_data_acceptance.enabled = false
"""
)
BOUNDED = ("--phases", "fuzzing", "--seed", "1", "--max-examples")
ROW = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return written_by("make_models.py", tmp_path_factory.mktemp("llm"))


@pytest.fixture(scope="module")
def runtime(iris_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    log = tmp_path_factory.mktemp("fuzzed-runtime") / "serve.log"
    with serving(iris_dir / "iris.yaml", log, "--model-version", "1") as running:
        yield running


@pytest.fixture(scope="module")
def routed(guarded: Platform, iris_dir: Path, llm_dir: Path) -> str:
    """The admin key, once the gateway routes iris and the chat model to ready replicas."""
    admin = admin_key(guarded)
    bearer = {"Authorization": f"Bearer {admin}"}
    for manifest, name in ((iris_dir / "iris.yaml", "iris"), (llm_dir / "chat.yaml", "tiny-chat")):
        applied = guarded.cli("apply", "-f", str(manifest), key=admin)
        assert applied.returncode == 0, applied.stderr
        ready = f"{guarded.gateway}/v2/models/{name}/ready"
        wait_for(lambda url=ready: httpx.get(url, headers=bearer).is_success, f"{name} ready", 60)
    return admin


def test_the_runtime_survives_fuzzing_and_answers_as_described(
    runtime: RuntimeProcess, tmp_path: Path
) -> None:
    found = schemathesis(f"{runtime.url}/openapi.json", RUNTIME_SETTINGS, tmp_path, *BOUNDED, "100")
    report = found.stdout + found.stderr
    assert found.returncode == 0, report[-6000:]
    assert generated(report) > 150, report[-2000:]
    assert "Traceback" not in runtime.output()


@pytest.mark.parametrize(
    ("manifest", "fuzzing"),
    [("chat.yaml", CHAT_SETTINGS), ("embedding.yaml", EMBEDDING_SETTINGS)],
)
def test_a_runtime_speaking_the_openai_api_survives_fuzzing(
    llm_dir: Path, tmp_path: Path, manifest: str, fuzzing: str
) -> None:
    with serving(llm_dir / manifest, tmp_path / "serve.log", "--model-version", "1") as runtime:
        found = schemathesis(f"{runtime.url}/openapi.json", fuzzing, tmp_path, *BOUNDED, "15")
        report = found.stdout + found.stderr
        assert found.returncode == 0, report[-6000:]
        assert generated(report) > 40, report[-2000:]
        assert "Traceback" not in runtime.output()


def test_the_gateway_survives_fuzzing_and_answers_as_described(
    guarded: Platform, routed: str, tmp_path: Path
) -> None:
    found = schemathesis(f"{guarded.gateway}/openapi.json", GATEWAY_SETTINGS, tmp_path, *BOUNDED,
                         "30", key=routed)  # fmt: skip
    report = found.stdout + found.stderr
    assert found.returncode == 0, report[-6000:]
    assert generated(report) > 150, report[-2000:]
    assert "Traceback" not in guarded.log.read_text()


def test_the_descriptions_are_open_and_name_what_is_served(
    runtime: RuntimeProcess, guarded: Platform
) -> None:
    served = httpx.get(f"{runtime.url}/openapi.json").json()
    infer = served["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["parameters"][0]["schema"] == {"enum": ["iris"]}
    inputs = infer["requestBody"]["content"]["application/json"]["schema"]["properties"]["inputs"]
    assert inputs["items"]["properties"]["name"] == {"const": "X"}
    assert not any(path.startswith("/v1/") for path in served["paths"])  # iris speaks v2 only
    gateway = httpx.get(f"{guarded.gateway}/openapi.json")  # no credential
    assert gateway.status_code == 200
    assert gateway.json()["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


EMPTY_BATCH = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [0, 4], "data": []}]}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "said", "allow"),
    [
        ("GET", "/v2/models/iris/infer", None, 405, "takes POST, not GET", "POST"),
        ("DELETE", "/v2/models/iris/versions/1/infer", None, 405, "takes POST, not DELETE",
         "POST"),
        ("POST", "/v2/models/iris", None, 405, "takes GET, HEAD, not POST", "GET, HEAD"),
        ("GET", "/v2/models", None, 404, "no route for /v2/models", None),
        # A batch of no rows: the embedding model's llama.cpp failed on it (500).
        ("POST", "/v2/models/iris/infer", EMPTY_BATCH, 400, "no rows", None),
    ],
)  # fmt: skip
def test_what_fuzzing_found_in_the_runtime_stays_fixed(
    runtime: RuntimeProcess,
    method: str,
    path: str,
    body: Any,
    status: int,
    said: str,
    allow: str | None,
) -> None:
    reply = httpx.request(method, runtime.url + path, json=body)
    assert reply.status_code == status, reply.text
    assert reply.headers.get("allow") == allow
    assert said in reply.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "named"),
    [
        ("POST", "/v1/chat/completions", {"model": "0", "messages": [{"role": "", "content": [
            {"type": "", "text": {}}]}]}, 404, "is not served"),
        ("POST", "/v1/completions", {"model": "iris", "prompt": ""}, 404, "does not speak"),
        ("POST", "/v2/health/live", None, 405, "takes GET, HEAD, not POST"),
        ("PUT", "/metrics", None, 405, "takes GET, HEAD, not PUT"),
        ("GET", "/v1/chat/completions", None, 405, "takes POST, not GET"),
        ("GET", "/v2/models/iris/infer", None, 405, "takes POST, not GET"),
        ("POST", "/v2/models/default/iris/ready", ROW, 405, "takes GET, HEAD, not POST"),
        ("HEAD", "/v2/models/iris", None, 200, ""),
    ],
)  # fmt: skip
def test_what_fuzzing_found_in_the_gateway_stays_fixed(
    guarded: Platform, routed: str, method: str, path: str, body: Any, status: int, named: str
) -> None:
    reply = httpx.request(method, guarded.gateway + path, json=body, timeout=10,
                          headers={"Authorization": f"Bearer {routed}"})  # fmt: skip
    assert reply.status_code == status, reply.text
    if method != "HEAD":
        error = reply.json()["error"]
        assert named in (error["message"] if path.startswith("/v1/") else error)
