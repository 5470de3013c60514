"""Model formats and artifact sources: ONNX, scikit-learn under the pickle policy, python, http."""

from __future__ import annotations

import hashlib
import http.server
import pickle
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from modelplane.api.exits import EXIT_ARTIFACT_UNAVAILABLE
from tests.conftest import StartRuntime, write_manifest

SETOSA = {
    "inputs": [
        {"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}
    ]
}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sklearn_served_when_pinned_and_allowed(
    start_runtime: StartRuntime, iris_dir: Path
) -> None:
    runtime = start_runtime("-f", str(iris_dir / "iris-sklearn.yaml"))
    runtime.wait_ready()
    meta = httpx.get(runtime.url + "/v2/models/iris-sklearn").json()
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    body = httpx.post(runtime.url + "/v2/models/iris-sklearn/infer", json=SETOSA).json()
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["data"] == [0]
    assert outputs["predict_proba"]["shape"] == [1, 3]


class Exploit:
    """Unpickling this runs ``touch`` on the marker path: what a malicious artifact does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("pin", [False, True])
def test_malicious_pickle_is_never_loaded_without_opt_in(
    start_runtime: StartRuntime, tmp_path: Path, pin: bool
) -> None:
    marker = tmp_path / "pwned"
    artifact = tmp_path / "model.joblib"
    artifact.write_bytes(pickle.dumps(Exploit(marker)))
    spec = {"sha256": digest(artifact)} if pin else {}
    manifest = write_manifest(tmp_path / "m.yaml", "evil", artifact.as_uri(), "sklearn", **spec)
    runtime = start_runtime("-f", str(manifest))
    assert runtime.wait_exit() == 3
    assert "runtime.allowPickle: true" in runtime.output()
    assert not marker.exists()


def test_allow_pickle_without_digest_is_an_invalid_spec(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    manifest = write_manifest(
        tmp_path / "m.yaml",
        "evil",
        "file:///x.joblib",
        "sklearn",
        extra="  runtime: {allowPickle: true}\n",
    )
    runtime = start_runtime("-f", str(manifest))
    assert runtime.wait_exit() == 4
    assert "runtime.allowPickle needs source.sha256" in runtime.output()


def test_digest_mismatch_is_a_load_failure(
    start_runtime: StartRuntime, iris_dir: Path, tmp_path: Path
) -> None:
    manifest = write_manifest(
        tmp_path / "m.yaml", "iris", (iris_dir / "model.onnx").as_uri(), "onnx", sha256="0" * 64
    )
    runtime = start_runtime("-f", str(manifest))
    assert runtime.wait_exit() == EXIT_ARTIFACT_UNAVAILABLE
    output = runtime.output()
    assert f"has sha256 {digest(iris_dir / 'model.onnx')}, but the spec pins {'0' * 64}" in output


def test_missing_file_and_broken_onnx(start_runtime: StartRuntime, tmp_path: Path) -> None:
    missing = start_runtime("--uri", (tmp_path / "nope.onnx").as_uri(), "--format", "onnx")
    assert missing.wait_exit() == EXIT_ARTIFACT_UNAVAILABLE
    assert "not found" in missing.output()
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"definitely not protobuf")
    broken = start_runtime("--uri", garbage.as_uri(), "--format", "onnx")
    assert broken.wait_exit() == 3
    assert "onnxruntime cannot load garbage.onnx" in broken.output()


def test_relative_file_uri_resolves_from_the_working_directory(
    start_runtime: StartRuntime, iris_dir: Path
) -> None:
    runtime = start_runtime(
        "--uri", "file://model.onnx", "--format", "onnx", "--name", "iris", cwd=iris_dir
    )
    runtime.wait_ready()


@pytest.fixture
def http_server(iris_dir: Path) -> Iterator[str]:
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(iris_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_source_is_fetched_and_verified(
    start_runtime: StartRuntime, http_server: str, iris_dir: Path, tmp_path: Path
) -> None:
    good = write_manifest(
        tmp_path / "good.yaml",
        "iris",
        f"{http_server}/model.onnx",
        "onnx",
        sha256=digest(iris_dir / "model.onnx"),
    )
    runtime = start_runtime("-f", str(good))
    runtime.wait_ready()
    cached = list((tmp_path / "cache" / "artifacts").rglob("model.onnx"))
    assert len(cached) == 1

    tampered = write_manifest(
        tmp_path / "bad.yaml", "iris", f"{http_server}/model.joblib", "onnx", sha256="1" * 64
    )
    refused = start_runtime("-f", str(tampered))
    assert refused.wait_exit() == EXIT_ARTIFACT_UNAVAILABLE
    assert "refusing to serve it" in refused.output()
    assert not [
        p for p in (tmp_path / "cache" / "artifacts").rglob("*") if p.name == "model.joblib"
    ]

    missing = start_runtime("--uri", f"{http_server}/absent.onnx", "--format", "onnx")
    assert missing.wait_exit() == EXIT_ARTIFACT_UNAVAILABLE
    assert "HTTP 404" in missing.output()
