"""``models:/`` sources against a real MLflow tracking server (``mlflow_server.py``) whose models
were registered by MLflow's own client and whose artifacts live in the real S3 store: versions
and aliases resolve, the model directory arrives whole and stable, the flavour's file is what a
format loads, and what cannot be had is refused with a message that names it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import pytest
import yaml

from modelplane.api import ModelFormat, Source
from modelplane.artifacts import Fetcher, FetchSettings, Limits, Transfer, artifact_cache, digest_of
from modelplane.artifacts.mlflow_models import mlflow_model_file
from modelplane.errors import (
    ArtifactAccessDeniedError,
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactUnreachableError,
    ModelLoadError,
)
from tests.artifacts.mlflow_server import MlflowServer, mlflow_venv
from tests.artifacts.s3server import S3Server
from tests.conftest import write_manifest
from tests.processes import RuntimeProcess, free_port

SETOSA = [5.1, 3.5, 1.4, 0.2]
QUICK = FetchSettings(transfer=Transfer(attempts=2, first_backoff=0.01))


@pytest.fixture(scope="module")
def proxied(
    tmp_path_factory: pytest.TempPathFactory, s3: S3Server, iris_dir: Path
) -> Iterator[MlflowServer]:
    """A server that proxies its S3 store (``mlflow-artifacts:/``), with iris in the onnx flavour
    (``@champion`` on version 1), in the sklearn flavour (version 1 cloudpickle, 2 pickle), and a
    model that has only the python_function flavour."""
    server = MlflowServer(mlflow_venv(), tmp_path_factory.mktemp("mlflow-proxied"), s3)
    try:
        server.register(
            {"log": "onnx", "name": "iris-onnx", "onnx": str(iris_dir / "model.onnx")},
            {"alias": "champion", "name": "iris-onnx", "version": "1"},
            {"log": "sklearn", "name": "iris-sklearn", "serialization": "cloudpickle"},
            {"log": "sklearn", "name": "iris-sklearn", "serialization": "pickle"},
            {"log": "pyfunc", "name": "constant"},
        )
        yield server
    finally:
        server.stop()


@pytest.fixture
def reading(proxied: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowServer:
    """This process's environment as a replica's: the tracking server and the reader's login."""
    for name, value in proxied.reader_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    return proxied


def fetch(uri: str, where: Path, endpoint: str | None = None) -> Path:
    """The artifact of ``uri``, fetched into a cache of its own under ``where``."""
    cache = artifact_cache(where / f"cache-{secrets.token_hex(4)}")
    with Fetcher(cache, where, QUICK) as fetcher:
        return fetcher.fetch(Source(uri=uri, endpoint=endpoint))


def pinned(uri: str, endpoint: str | None = None) -> str:
    with Fetcher(artifact_cache(Path("/nonexistent")), Path("."), QUICK) as fetcher:
        return fetcher.pin(Source(uri=uri, endpoint=endpoint)).uri


def digest(path: Path) -> str:
    return digest_of(path, Limits(), str(path))


def test_a_version_and_an_alias_fetch_the_same_model_directory_with_a_stable_digest(
    reading: MlflowServer, tmp_path: Path, iris_dir: Path
) -> None:
    assert pinned("models:/iris-onnx@champion") == "models:/iris-onnx/1"
    assert pinned("models:/iris-onnx/1") == "models:/iris-onnx/1"
    by_version = fetch("models:/iris-onnx/1", tmp_path)
    assert (by_version / "MLmodel").is_file()
    graph = mlflow_model_file(by_version, ModelFormat.ONNX)
    assert graph.read_bytes() == (iris_dir / "model.onnx").read_bytes()
    again, by_alias = (
        fetch("models:/iris-onnx/1", tmp_path),
        fetch("models:/iris-onnx@champion", tmp_path),
    )
    assert digest(by_version) == digest(again) == digest(by_alias)


def test_moving_an_alias_leaves_what_a_version_fetches_unchanged(
    reading: MlflowServer, tmp_path: Path, iris_dir: Path
) -> None:
    onnx = {"log": "onnx", "name": "iris-moving", "onnx": str(iris_dir / "model.onnx")}
    first, second = reading.register(
        onnx, onnx, {"alias": "live", "name": "iris-moving", "version": "1"}
    )[:2]
    assert pinned("models:/iris-moving@live") == f"models:/iris-moving/{first}"
    before = digest(fetch(f"models:/iris-moving/{first}", tmp_path))

    reading.register({"alias": "live", "name": "iris-moving", "version": second})
    assert pinned("models:/iris-moving@live") == f"models:/iris-moving/{second}"
    assert digest(fetch(f"models:/iris-moving/{first}", tmp_path)) == before
    moved = digest(fetch("models:/iris-moving@live", tmp_path))
    assert moved == digest(fetch(f"models:/iris-moving/{second}", tmp_path)) != before


@pytest.mark.parametrize(("version", "serialization"), [("1", "cloudpickle"), ("2", "pickle")])
def test_the_sklearn_flavour_gives_a_pickle_joblib_loads(
    reading: MlflowServer, tmp_path: Path, version: str, serialization: str
) -> None:
    directory = fetch(f"models:/iris-sklearn/{version}", tmp_path)
    flavours = yaml.safe_load((directory / "MLmodel").read_text())["flavors"]
    assert flavours["sklearn"]["serialization_format"] == serialization
    estimator = joblib.load(mlflow_model_file(directory, ModelFormat.SKLEARN))
    assert estimator.predict([SETOSA]).tolist() == [0]


@pytest.mark.parametrize(
    ("uri", "fmt", "said"),
    [
        ("models:/iris-onnx/1", ModelFormat.SKLEARN,
         "spec.format is 'sklearn', but the MLflow model models:/iris-onnx/1 has the flavours "
         "onnx, python_function; set spec.format to onnx"),
        ("models:/iris-sklearn/1", ModelFormat.ONNX,
         "has the flavours python_function, sklearn; set spec.format to sklearn"),
        ("models:/constant/1", ModelFormat.ONNX,
         "the MLflow model models:/constant/1 has only the flavours python_function, none of "
         "which modelplane serves"),
    ],
)  # fmt: skip
def test_a_flavour_the_format_cannot_load_is_refused_naming_the_flavours(
    reading: MlflowServer, tmp_path: Path, uri: str, fmt: ModelFormat, said: str
) -> None:
    with pytest.raises(ModelLoadError) as refused:
        mlflow_model_file(fetch(uri, tmp_path), fmt, uri)
    assert said in str(refused.value)


@pytest.mark.parametrize(
    ("uri", "said"),
    [
        ("models:/iris-onnx/9",
         "version 9 of registered model 'iris-onnx' not found at {url} (HTTP 404 "
         "RESOURCE_DOES_NOT_EXIST); its latest version is 1; its aliases: @champion -> 1"),
        ("models:/iris-onnx@stable",
         "alias 'stable' of registered model 'iris-onnx' not found at {url}"),
    ],
)  # fmt: skip
def test_an_unknown_model_version_or_alias_is_not_found_naming_what_exists(
    reading: MlflowServer, tmp_path: Path, uri: str, said: str
) -> None:
    for attempt in (lambda: pinned(uri), lambda: fetch(uri, tmp_path)):
        with pytest.raises(ArtifactNotFoundError) as missing:
            attempt()
        assert str(missing.value).startswith(f"{uri}: ")
        assert said.format(url=reading.url) in str(missing.value)


def test_a_model_that_does_not_exist_is_not_found_by_an_admin_and_denied_to_a_reader(
    reading: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for uri in ("models:/missing/1", "models:/missing@champion"):
        with pytest.raises(ArtifactAccessDeniedError) as denied:
            fetch(uri, tmp_path)
        assert "HTTP 403" in str(denied.value)
        assert "answers 403 for a model that does not exist" in str(denied.value)

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", reading.admin_password)
    for uri in ("models:/missing/1", "models:/missing@champion"):
        with pytest.raises(ArtifactNotFoundError) as missing:
            fetch(uri, tmp_path)
        assert str(missing.value).startswith(f"{uri}: ")
        assert str(missing.value).endswith("no registered model is named 'missing' there")


@pytest.mark.parametrize("variable", ["MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"])
def test_wrong_credentials_are_denied_without_being_shown(
    reading: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    wrong = secrets.token_urlsafe(18)
    monkeypatch.setenv(variable, wrong)
    with pytest.raises(ArtifactAccessDeniedError) as denied:
        fetch("models:/iris-onnx/1", tmp_path)
    assert f"the MLflow tracking server {reading.url} denied access" in str(denied.value)
    assert "HTTP 401" in str(denied.value)
    assert wrong not in str(denied.value)
    assert reading.reader_password not in str(denied.value)


def test_the_tracking_server_comes_from_the_source_else_the_environment_and_must_answer(
    reading: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", closed)
    with pytest.raises(ArtifactUnreachableError) as silent:
        pinned("models:/iris-onnx/1")
    assert f"the MLflow tracking server {closed} did not answer" in str(silent.value)
    # source.endpoint wins over the environment
    assert pinned("models:/iris-onnx@champion", endpoint=reading.url) == "models:/iris-onnx/1"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    with pytest.raises(ArtifactError, match=r"tracking URI is a sqlite: URI, not http\(s\)"):
        pinned("models:/iris-onnx/1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with pytest.raises(ArtifactError, match=r"set source\.endpoint or MLFLOW_TRACKING_URI"):
        pinned("models:/iris-onnx/1")


def test_a_version_kept_straight_in_s3_is_fetched_from_the_store_with_the_replicas_keys(
    tmp_path_factory: pytest.TempPathFactory, s3: S3Server, iris_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    server = MlflowServer(
        mlflow_venv(), tmp_path_factory.mktemp("mlflow-direct"), s3, proxied=False
    )
    try:
        server.register(
            {"log": "onnx", "name": "iris-direct", "onnx": str(iris_dir / "model.onnx")}
        )
        for name, value in server.reader_env().items():
            monkeypatch.setenv(name, value)
        directory = fetch("models:/iris-direct/1", tmp_path)
        graph = mlflow_model_file(directory, ModelFormat.ONNX)
        assert graph.read_bytes() == (iris_dir / "model.onnx").read_bytes()

        monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.outsider.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.outsider.secret_key)
        with pytest.raises(ArtifactAccessDeniedError) as denied:
            fetch("models:/iris-direct/1", tmp_path)
        assert str(denied.value).startswith(
            "models:/iris-direct/1 (stored at s3://models/mlflow-direct/"
        )
        assert s3.outsider.secret_key not in str(denied.value)
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("uri", ["models:/iris-onnx/1", "models:/iris-onnx@champion"])
def test_modelplane_serve_predicts_with_a_registered_onnx_model(
    proxied: MlflowServer, tmp_path: Path, uri: str
) -> None:
    manifest = write_manifest(tmp_path / "iris.yaml", "iris", uri, "onnx")
    runtime = RuntimeProcess(
        ["-f", str(manifest)], tmp_path / "serve.log", env=proxied.reader_env()
    )
    try:
        runtime.wait_ready()
        body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": SETOSA}]}
        reply = httpx.post(f"{runtime.url}/v2/models/iris/infer", json=body, timeout=30)
        assert reply.status_code == 200, reply.text
        outputs = {o["name"]: o["data"] for o in reply.json()["outputs"]}
        assert outputs["label"] == [0]
    finally:
        runtime.terminate()
    assert proxied.reader_password not in runtime.output()
