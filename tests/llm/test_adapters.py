"""LoRA adapters on one llama.cpp runtime: the GGUF adapters the example script writes, served
beside the base model, loaded on first use, kept least recently used first, told again as the
adapter list changes; broken ones fail their own requests only."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT
from tests.processes import RuntimeProcess

PROMPT = "Hello, how are you"
HEADER = "x-modelplane-adapters"


def adapter(name: str, path: Path) -> dict[str, Any]:
    return {"name": name, "source": {"uri": path.as_uri()}}


@pytest.fixture(scope="module")
def adapters(llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The example's two adapters, one written for a narrower model and a file that is none."""
    other = tmp_path_factory.mktemp("narrow")
    script = ROOT / "examples" / "llm" / "make_models.py"
    command = [sys.executable, str(script), "--out", str(other), "--embedding", "32"]
    subprocess.run(command, check=True, capture_output=True)
    broken = other / "broken.gguf"
    broken.write_bytes(b"not an adapter at all")
    return {
        "pirate": llm_dir / "tiny-chat-pirate.gguf",
        "poet": llm_dir / "tiny-chat-poet.gguf",
        "narrow": other / "tiny-chat-pirate.gguf",
        "broken": broken,
        "missing": other / "nowhere.gguf",
    }


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("told") / "adapters.json"


def tell(listed: Path, max_loaded: int, **paths: Path) -> None:
    """Write the adapter list as the platform does: whole, by rename."""
    document = {"adapters": [adapter(n, p) for n, p in paths.items()], "maxLoaded": max_loaded}
    staged = listed.with_suffix(".tmp")
    staged.write_text(json.dumps(document))
    staged.replace(listed)


@pytest.fixture(scope="module")
def runtime(
    llm_dir: Path,
    adapters: dict[str, Path],
    listed: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RuntimeProcess]:
    """tiny-chat whose manifest names pirate alone; the file it is told replaces that list."""
    manifest = (llm_dir / "chat.yaml").read_text() + (
        f"  adapters:\n  - name: pirate\n    source: {{uri: '{adapters['pirate'].as_uri()}'}}\n"
    )
    path = tmp_path_factory.mktemp("adapters") / "chat.yaml"
    path.write_text(manifest)
    tell(listed, 1, **{n: adapters[n] for n in ("pirate", "poet", "narrow", "broken", "missing")})
    served = RuntimeProcess(
        ["-f", str(path), "--adapters-file", str(listed)], path.parent / "serve.log"
    )
    try:
        served.wait_ready()
        yield served
    finally:
        served.terminate()


def complete(runtime: RuntimeProcess, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "prompt": PROMPT, "max_tokens": 12, "temperature": 0, **extra}
    return httpx.post(f"{runtime.url}/v1/completions", json=body, timeout=60)


def text(reply: httpx.Response) -> str:
    assert reply.status_code == 200, reply.text
    return str(reply.json()["choices"][0]["text"])


def streamed(runtime: RuntimeProcess, model: str) -> str:
    body = {"model": model, "prompt": PROMPT, "max_tokens": 24, "temperature": 0, "stream": True}
    pieces = []
    with httpx.stream("POST", f"{runtime.url}/v1/completions", json=body, timeout=60) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if line.startswith("data: {"):
                pieces += [c["text"] for c in json.loads(line[6:])["choices"]]
    return "".join(pieces)


def test_models_lists_the_adapters_with_their_parent(runtime: RuntimeProcess) -> None:
    found = httpx.get(f"{runtime.url}/v1/models").json()["data"]
    assert [(m["id"], m.get("parent")) for m in found] == [
        ("tiny-chat", None),
        *((name, "tiny-chat") for name in ("pirate", "poet", "narrow", "broken", "missing")),
    ]
    assert httpx.get(f"{runtime.url}/v1/models/poet").json()["parent"] == "tiny-chat"


def test_an_adapter_changes_what_the_model_writes_and_the_base_is_untouched(
    runtime: RuntimeProcess,
) -> None:
    base = text(complete(runtime, "tiny-chat"))
    pirate = text(complete(runtime, "pirate"))
    poet = text(complete(runtime, "default/poet"))
    assert len({base, pirate, poet}) == 3
    assert text(complete(runtime, "pirate")) == pirate
    assert text(complete(runtime, "tiny-chat")) == base
    assert complete(runtime, "poet").json()["model"] == "poet"


def test_requests_of_several_adapters_at_once_each_get_their_own_text(
    runtime: RuntimeProcess,
) -> None:
    """Steps take one adapter's sequences at a time: streams that overlap still each make
    what they make alone."""
    models = ["tiny-chat", "pirate", "poet", "tiny-chat", "pirate"]
    alone = {model: streamed(runtime, model) for model in set(models)}
    with ThreadPoolExecutor(len(models)) as pool:
        together = list(pool.map(lambda m: streamed(runtime, m), models))
    assert together == [alone[m] for m in models]


def test_the_least_recently_used_adapter_is_dropped_past_max_loaded(
    runtime: RuntimeProcess,
) -> None:
    assert json.loads(complete(runtime, "pirate").headers[HEADER])["loaded"] == ["pirate"]
    assert json.loads(complete(runtime, "poet").headers[HEADER])["loaded"] == ["poet"]
    assert json.loads(complete(runtime, "pirate").headers[HEADER])["loaded"] == ["pirate"]


def test_an_unknown_adapter_is_404_with_the_list(runtime: RuntimeProcess) -> None:
    reply = complete(runtime, "sailor")
    assert reply.status_code == 404
    message = reply.json()["error"]["message"]
    assert "'sailor'" in message
    assert "'pirate', 'poet'" in message


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("broken", "is not a LoRA adapter of this model"),
        ("narrow", "is not a LoRA adapter of this model"),
        ("missing", "cannot be fetched"),
    ],
)
def test_a_bad_adapter_fails_its_own_requests_only(
    runtime: RuntimeProcess, name: str, why: str
) -> None:
    base = text(complete(runtime, "tiny-chat"))
    for _ in range(2):  # the second is answered from what the first learned
        reply = complete(runtime, name)
        assert reply.status_code == 424, reply.text
        assert reply.json()["error"]["code"] == "adapter_unavailable"
        message = reply.json()["error"]["message"]
        assert f"adapter {name!r} of model 'tiny-chat'" in message
        assert why in message
    assert name in json.loads(reply.headers[HEADER])["failed"]
    assert text(complete(runtime, "tiny-chat")) == base
    assert text(complete(runtime, "pirate"))


def test_a_changed_list_is_served_without_a_restart(
    runtime: RuntimeProcess, adapters: dict[str, Path], listed: Path
) -> None:
    tell(listed, 2, pirate=adapters["pirate"], sailor=adapters["poet"])
    deadline = time.monotonic() + 10
    while complete(runtime, "sailor").status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert text(complete(runtime, "sailor")) == text(complete(runtime, "sailor"))
    assert complete(runtime, "poet").status_code == 404  # no longer listed
    loaded = json.loads(complete(runtime, "pirate").headers[HEADER])["loaded"]
    assert loaded == ["pirate", "sailor"]
