"""A GGUF model served by llama.cpp's own OpenAI-compatible server, which the runtime starts,
fronts and stops: the generic engine adapter that the vllm preset shares."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client import CollectorRegistry, Gauge, Info, generate_latest

from modelplane.api import ModelSpec
from modelplane.api.engine_load import HEADER, LOAD_PATH, EngineLoad, decode
from modelplane.api.exits import EXIT_MISSING_EXTRA
from modelplane.runtime.external import LLAMACPP_CONTEXT, ExternalEngine
from modelplane.runtime.external_load import STALE_SECONDS, ExternalLoad
from tests.llm.conftest import chat_variant, openai_client
from tests.processes import RuntimeProcess

HELLO = [{"role": "user", "content": "Hello, how are you today?"}]


def external(llm_dir: Path, name: str) -> Path:
    """The chat example, served by llama.cpp's own server."""
    engine = "  engine:\n    external: true\n    startupTimeoutSeconds: 60\n"
    return chat_variant(llm_dir, name, engine)


def engine_pid(runtime: RuntimeProcess) -> int:
    children = subprocess.run(
        ["pgrep", "-P", str(runtime.process.pid)], capture_output=True, text=True
    ).stdout.split()
    assert len(children) == 1, children
    return int(children[0])


@pytest.fixture(scope="module")
def fronted(llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> RuntimeProcess:
    log = tmp_path_factory.mktemp("external") / "serve.log"
    runtime = RuntimeProcess(["-f", str(external(llm_dir, "fronted"))], log)
    runtime.wait_ready()
    yield runtime  # type: ignore[misc]
    runtime.terminate()


def test_chat_and_streams_pass_through_the_engines_server(fronted: RuntimeProcess) -> None:
    client = openai_client(f"{fronted.url}/v1")
    assert [m.id for m in client.models.list().data] == ["fronted"]
    whole = client.chat.completions.create(
        model="fronted", messages=HELLO, max_tokens=8, temperature=0
    )
    assert whole.choices[0].message.content
    assert whole.usage is not None
    assert whole.usage.completion_tokens == 8
    chunks = list(
        client.chat.completions.create(
            model="default/fronted", messages=HELLO, max_tokens=8, temperature=0, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "length"


def test_the_runtime_checks_what_it_can_before_the_engine(fronted: RuntimeProcess) -> None:
    client = openai_client(f"{fronted.url}/v1")
    with pytest.raises(openai.BadRequestError) as capped:
        client.chat.completions.create(model="fronted", messages=HELLO, max_tokens=5000)
    assert "at most 1024 tokens" in capped.value.message
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=HELLO)
    body = {"model": "fronted", "messages": HELLO, "n": 3}
    reply = httpx.post(f"{fronted.url}/v1/chat/completions", json=body)
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "n"


def test_runtime_metrics_count_the_passed_through_requests(fronted: RuntimeProcess) -> None:
    text = httpx.get(f"{fronted.url}/metrics").text
    assert 'modelplane_runtime_requests_total{model="fronted",outcome="success"}' in text


def test_the_engines_load_is_reported_as_the_in_process_engines_report_theirs(
    fronted: RuntimeProcess,
) -> None:
    """llama.cpp's server says nothing of its load: the runtime counts what it has open there
    (one request runs, the rest wait) and reports it for the gateway's balancing."""

    def load() -> EngineLoad:
        return decode(httpx.get(f"{fronted.url}{LOAD_PATH}", timeout=10).headers[HEADER])

    idle = load()
    assert (idle.running, idle.waiting, idle.slots) == (0, 0, 1)
    assert idle.capacity == LLAMACPP_CONTEXT  # the server's own context: no contextLength
    body = {"model": "fronted", "messages": HELLO, "max_tokens": 1000, "seed": 1}
    seen: set[tuple[int, int]] = set()
    with ThreadPoolExecutor(3) as pool:
        url = f"{fronted.url}/v1/chat/completions"
        sent = [pool.submit(httpx.post, url, json=body, timeout=120) for _ in range(3)]
        while not all(future.done() for future in sent):
            now = load()
            seen.add((now.running, now.waiting))
        answers = [future.result() for future in sent]
    assert all(answer.status_code == 200 for answer in answers)
    assert {running for running, _ in seen} <= {0, 1}  # never more than its one slot
    assert any(waiting for _, waiting in seen)  # the others wait their turn, and are counted
    assert decode(answers[0].headers[HEADER]).slots == 1  # stamped on the answers too
    assert (load().running, load().waiting) == (0, 0)


def test_an_engines_metrics_are_its_load_while_fresh() -> None:
    """vLLM's gauges (as a registry of that shape exposes them) are the engine's load; a stale
    read falls back to the runtime's own count."""
    registry = CollectorRegistry()
    labels = ["model_name"]
    Gauge("vllm:num_requests_running", "", labels, registry=registry).labels("m").set(7)
    Gauge("vllm:num_requests_waiting", "", labels, registry=registry).labels("m").set(3)
    Gauge("vllm:kv_cache_usage_perc", "", labels, registry=registry).labels("m").set(0.25)
    config = Info("vllm:cache_config", "", registry=registry)
    config.info({"block_size": "16", "num_gpu_blocks": "4096"})
    watched = ExternalLoad(slots=256, capacity=0)
    watched.note(generate_latest(registry).decode(), now=100.0)
    fresh = watched.load(now=101.0)
    assert (fresh.running, fresh.waiting, fresh.slots) == (7, 3, 256)
    assert (fresh.kv_usage, fresh.capacity) == (0.25, 16 * 4096)
    watched.open = 2
    stale = watched.load(now=100.0 + STALE_SECONDS + 1)
    assert (stale.running, stale.waiting, stale.capacity) == (2, 0, 0)
    watched.note("# another engine's metrics\nother_total 1\n", now=200.0)
    assert watched.load(now=200.0).running == 2  # nothing read: the count stands


def test_an_engine_that_dies_takes_the_replica_down(llm_dir: Path, tmp_path: Path) -> None:
    runtime = RuntimeProcess(["-f", str(external(llm_dir, "fragile"))], tmp_path / "serve.log")
    try:
        runtime.wait_ready()
        os.kill(engine_pid(runtime), signal.SIGKILL)
        assert runtime.wait_exit(timeout=20) == 3  # a supervisor restarts it
        assert "the engine exited with code -9" in runtime.output()
    finally:
        runtime.terminate()


def test_stopping_the_runtime_stops_its_engine(llm_dir: Path, tmp_path: Path) -> None:
    runtime = RuntimeProcess(["-f", str(external(llm_dir, "stopped"))], tmp_path / "serve.log")
    runtime.wait_ready()
    engine = engine_pid(runtime)
    assert runtime.terminate() == 0
    deadline = time.monotonic() + 15
    while Path(f"/proc/{engine}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{engine}").exists()


def test_an_engine_that_cannot_load_fails_the_replica_with_the_reason(
    llm_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    manifest = external(llm_dir, "broken").read_text()
    start = manifest.index("    uri:")
    end = manifest.index("  format:")
    manifest = manifest[:start] + f"    uri: {broken.as_uri()}\n" + manifest[end:]
    (tmp_path / "broken.yaml").write_text(manifest)
    runtime = RuntimeProcess(["-f", str(tmp_path / "broken.yaml")], tmp_path / "serve.log")
    try:
        assert runtime.wait_exit(timeout=60) == 3
        assert "the engine exited with code" in runtime.output()
    finally:
        runtime.terminate()


def test_the_vllm_preset_differs_only_in_its_command_line(tmp_path: Path) -> None:
    spec = ModelSpec.model_validate(
        {
            "source": {"uri": "file:///models/llama"},
            "format": "vllm",
            "task": "chat",
            "generation": {"contextLength": 8192},
            "engine": {"args": ["--gpu-memory-utilization", "0.9"]},
        }
    )
    engine = ExternalEngine(spec, "llama", Path("/models/llama"))
    assert engine.command == [
        "vllm", "serve", "/models/llama", "--host", "127.0.0.1", "--port", str(engine.port),
        "--served-model-name", "llama", "--max-model-len", "8192",
        "--gpu-memory-utilization", "0.9",
    ]  # fmt: skip
    assert engine.preset.ready_path == "/health"
    assert engine.preset.metrics_path == "/metrics"  # vllm:* gauges pass through /metrics


def test_external_engines_are_refused_for_formats_without_a_server() -> None:
    with pytest.raises(ValueError, match=r"engine\.external needs a format with a server"):
        ModelSpec.model_validate(
            {
                "source": {"uri": "file:///m.onnx"},
                "format": "onnx",
                "task": "classification",
                "engine": {"external": True},
            }
        )


@pytest.mark.parametrize(
    ("manifest", "package", "extra"),
    [
        ("chat.yaml", "llama_cpp", "llamacpp"),
        ("fronted.yaml", "llama_cpp", "llamacpp"),
        ("hf.yaml", "torch", "huggingface"),
    ],
)
def test_a_model_whose_extra_is_missing_fails_naming_the_extra(
    llm_dir: Path, tmp_path: Path, manifest: str, package: str, extra: str
) -> None:
    if manifest == "fronted.yaml":
        external(llm_dir, "fronted")
    if manifest == "hf.yaml":
        (llm_dir / manifest).write_text(
            "apiVersion: modelplane.io/v1alpha1\nkind: Model\nmetadata: {name: hf}\nspec:\n"
            f"  source: {{uri: '{tmp_path.as_uri()}'}}\n  format: huggingface\n  task: chat\n"
        )
    # An installation without the extra: the package cannot be imported in the runtime.
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(f"import sys\nsys.modules[{package!r}] = None\n")
    runtime = RuntimeProcess(
        ["-f", str(llm_dir / manifest)], tmp_path / "serve.log", env={"PYTHONPATH": str(blocker)}
    )
    try:
        # No restart can cure it: the exit code says so, and the supervisor leaves it failed.
        assert runtime.wait_exit(timeout=60) == EXIT_MISSING_EXTRA
        assert f"pip install 'modelplane[{extra}]'" in runtime.output()
    finally:
        runtime.terminate()
