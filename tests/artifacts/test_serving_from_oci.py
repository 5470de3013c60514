"""End to end: ``modelplane up`` serves iris pushed with ``oras push`` to a registry that wants a
login, the login in the platform's environment, and the password nowhere a user can see."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelplane.artifacts import Limits, digest_of
from tests.artifacts.registry import Oras, Registry
from tests.platform.conftest import Platform, running_in

SETOSA = [5.1, 3.5, 1.4, 0.2]
NAME = "iris-oci"


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, basic_registry: Registry
) -> Iterator[Platform]:
    cache = tmp_path_factory.mktemp("artifact-cache")
    no_docker_config = tmp_path_factory.mktemp("no-docker-config")
    env = {**basic_registry.account.env(), "DOCKER_CONFIG": str(no_docker_config)}
    yield from running_in(
        tmp_path_factory, "oci-platform",
        env=env, options=("--cache-dir", str(cache), "--cache-size", "1Gi"),
    )  # fmt: skip


@pytest.mark.slow
def test_iris_pushed_with_oras_serves_from_a_registry_that_wants_a_login(
    platform: Platform, basic_registry: Registry, oras: Oras, iris_dir: Path, tmp_path: Path
) -> None:
    uri = f"oci://{basic_registry.host}/models/iris:v1"
    oras.push(f"{basic_registry.host}/models/iris:v1", "model.onnx", cwd=iris_dir)
    sha256 = digest_of(iris_dir / "model.onnx", Limits(), "")
    manifest = tmp_path / "iris.yaml"
    manifest.write_text(
        f"apiVersion: modelplane.io/v1alpha1\nkind: Model\nmetadata:\n  name: {NAME}\nspec:\n"
        f"  source:\n    uri: {uri}\n    sha256: '{sha256}'\n  format: onnx\n"
        "  task: classification\n  rollout: {strategy: Immediate}\n"
    )
    applied = platform.cli("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    platform.wait_condition(NAME, "Ready", "True", "RevisionReady", timeout=90)
    reply = platform.infer(NAME, [SETOSA])
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == [0]  # setosa

    password = basic_registry.account.password
    seen = [str(platform.model(NAME)), platform.log.read_text()]
    seen += [log.read_text() for log in (platform.state_dir / "logs").glob("*.log")]
    assert not [text for text in seen if password in text]
