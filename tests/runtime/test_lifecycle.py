"""A runtime process's life: readiness while loading, load failures, body limits, SIGTERM drain."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx

from tests.conftest import MODELS, StartRuntime, without_joblib, write_manifest

ECHO_BODY = {"inputs": [{"name": "t", "datatype": "INT32", "shape": [1], "data": [1]}]}


def slow_manifest(
    tmp_path: Path, delay: str = "0", predict_delay: str = "0", extra: str = ""
) -> Path:
    return write_manifest(
        tmp_path / "slow.yaml",
        "slow",
        (MODELS / "slow_load.py").as_uri(),
        "python",
        extra="  runtime:\n"
        f"    parameters: {{delay: '{delay}', predict_delay: '{predict_delay}'}}\n" + extra,
    )


def test_not_ready_while_loading_then_ready(start_runtime: StartRuntime, tmp_path: Path) -> None:
    runtime = start_runtime("-f", str(slow_manifest(tmp_path, delay="1.5")))
    runtime.wait_listening()
    assert httpx.get(runtime.url + "/v2/health/live").status_code == 200
    ready = httpx.get(runtime.url + "/v2/health/ready")
    assert ready.status_code == 503
    assert "still loading" in ready.json()["error"]
    infer = httpx.post(runtime.url + "/v2/models/slow/infer", json=ECHO_BODY)
    assert infer.status_code == 503
    runtime.wait_ready()
    assert httpx.post(runtime.url + "/v2/models/slow/infer", json=ECHO_BODY).status_code == 200


def test_load_failure_exits_with_the_reason(start_runtime: StartRuntime, tmp_path: Path) -> None:
    manifest = write_manifest(
        tmp_path / "broken.yaml", "broken", (MODELS / "broken.py").as_uri(), "python"
    )
    runtime = start_runtime("-f", str(manifest))
    assert runtime.wait_exit() == 3
    assert "weights file is corrupt" in runtime.output()


def test_a_missing_extra_exits_with_its_own_code(
    start_runtime: StartRuntime, tmp_path: Path, iris_dir: Path
) -> None:
    env = without_joblib(tmp_path / "shadow")
    runtime = start_runtime("-f", str(iris_dir / "iris-sklearn.yaml"), env=env)
    assert runtime.wait_exit() == 78  # not 3: a supervisor must not restart it
    assert "pip install 'modelplane[sklearn]'" in runtime.output()


def test_body_over_the_limit_is_413(start_runtime: StartRuntime, tmp_path: Path) -> None:
    manifest = slow_manifest(tmp_path, extra="")
    text = manifest.read_text().replace("  runtime:\n", "  runtime:\n    maxRequestBytes: 2048\n")
    manifest.write_text(text)
    runtime = start_runtime("-f", str(manifest))
    runtime.wait_ready()
    big = {"inputs": [{"name": "t", "datatype": "INT32", "shape": [1000], "data": [1] * 1000}]}
    reply = httpx.post(runtime.url + "/v2/models/slow/infer", json=big)
    assert reply.status_code == 413
    assert "limit of 2048" in reply.json()["error"]

    def chunks():  # type: ignore[no-untyped-def]
        yield (
            b'{"inputs": [{"name": "t", "datatype": "INT32", "shape": [1], "data": [1' + b" " * 4096
        )
        yield b"]}]}"

    streamed = httpx.post(runtime.url + "/v2/models/slow/infer", content=chunks())
    assert streamed.status_code == 413
    assert httpx.post(runtime.url + "/v2/models/slow/infer", json=ECHO_BODY).status_code == 200


def test_sigterm_finishes_in_flight_requests_and_exits_zero(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    runtime = start_runtime("-f", str(slow_manifest(tmp_path, predict_delay="1.0")))
    runtime.wait_ready()
    result: dict[str, httpx.Response] = {}

    def call() -> None:
        result["reply"] = httpx.post(
            runtime.url + "/v2/models/slow/infer", json=ECHO_BODY, timeout=10
        )

    worker = threading.Thread(target=call)
    worker.start()
    # Signal once the request is inside the model, as the in-flight gauge shows.
    _wait_in_flight(runtime.url)
    runtime.process.send_signal(signal.SIGTERM)
    worker.join(timeout=15)
    assert result["reply"].status_code == 200
    assert runtime.wait_exit(timeout=15) == 0


def _wait_in_flight(url: str) -> None:
    for _ in range(400):
        metrics = httpx.get(url + "/metrics").text
        if 'modelplane_runtime_in_flight_requests{model="slow"} 1.0' in metrics:
            return
        threading.Event().wait(0.01)
    raise AssertionError("request never became in-flight")
