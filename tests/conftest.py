"""Shared fixtures: the iris example artifacts, and runtimes started as real processes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelplane.telemetry import access
from tests.artifacts.registry import Oras, Registry, oras_binary
from tests.artifacts.s3server import S3Server, versitygw_binary
from tests.processes import RuntimeProcess, serving

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path(__file__).resolve().parent / "runtime" / "models"

StartRuntime = Callable[..., RuntimeProcess]


@pytest.fixture(scope="session")
def iris_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The iris example built by its own script, as a user would."""
    out = tmp_path_factory.mktemp("iris")
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "iris" / "train.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="session")
def iris_runtime(
    iris_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RuntimeProcess]:
    log = tmp_path_factory.mktemp("iris-runtime") / "serve.log"
    with serving(iris_dir / "iris.yaml", log, "--model-version", "1") as runtime:
        yield runtime


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """This process's logging as it was before the test set it up as a server command does."""
    root, logger = logging.getLogger(), logging.getLogger(access.LOGGER)
    handlers, level, access_level = root.handlers[:], root.level, logger.level
    try:
        yield
    finally:
        root.handlers[:], root.level = handlers, level
        logger.setLevel(access_level)


@pytest.fixture
def start_runtime(tmp_path: Path) -> Iterator[StartRuntime]:
    """Start ``modelplane serve`` with the given arguments; stopped after the test."""
    started: list[RuntimeProcess] = []

    def start(*args: str, **kwargs: object) -> RuntimeProcess:
        log = tmp_path / f"serve-{len(started)}.log"
        runtime = RuntimeProcess(list(args), log, **kwargs)  # type: ignore[arg-type]
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        runtime.terminate()


def write_manifest(path: Path, name: str, uri: str, fmt: str, extra: str = "", **spec: str) -> Path:
    """A minimal Model manifest; ``extra`` is appended under ``spec`` verbatim."""
    pin = f", sha256: '{spec['sha256']}'" if "sha256" in spec else ""
    lines = [
        "apiVersion: modelplane.io/v1alpha1",
        "kind: Model",
        f"metadata: {{name: {name}}}",
        "spec:",
        f"  source: {{uri: '{uri}'{pin}}}",
        f"  format: {fmt}",
        f"  task: {spec.get('task', 'classification')}",
    ]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def without_joblib(directory: Path) -> dict[str, str]:
    """An environment in which ``import joblib`` fails as it does where the sklearn extra is not
    installed: a package of that name, first on the path, raises what the import system would."""
    package = directory / "joblib"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'joblib'\", name='joblib')\n"
    )
    path = [str(directory), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path)}


# Real stores models are kept in: an S3-compatible store, OCI registries and the ORAS CLI that
# pushes to them (session-wide: the artifact tests and the cluster tests both serve from them).
@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(versitygw_binary(), tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oras(tmp_path_factory: pytest.TempPathFactory) -> Oras:
    """The ORAS CLI, with a Docker config of its own that ``oras login`` writes."""
    return Oras(oras_binary(), tmp_path_factory.mktemp("oras-config"))


def _registry(factory: pytest.TempPathFactory, oras: Oras, auth: str) -> Iterator[Registry]:
    running = Registry(factory.mktemp(f"registry-{auth}"), auth)
    try:
        if auth != "none":
            oras.login(running)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, oras: Oras) -> Iterator[Registry]:
    """A real OCI registry anyone may pull from and push to."""
    yield from _registry(tmp_path_factory, oras, "none")


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory, oras: Oras) -> Iterator[Registry]:
    """A real OCI registry with Basic authentication (htpasswd); ``oras`` is logged in."""
    yield from _registry(tmp_path_factory, oras, "htpasswd")


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory, oras: Oras) -> Iterator[Registry]:
    """A real OCI registry with token authentication; ``oras`` is logged in."""
    yield from _registry(tmp_path_factory, oras, "token")
