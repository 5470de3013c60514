"""End to end: ``modelplane up`` serves iris pushed with ``oras push`` to a registry that wants a
login, the login in the platform's environment, and the password nowhere a user can see; the
revision keeps the digest its tag named when it was made, whatever the tag names later."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelplane.artifacts import Limits, digest_of
from tests.artifacts.registry import Oras, Registry
from tests.platform.conftest import Platform, running_in, wait_for

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


def _tagged(name: str, uri: str, replicas: int) -> str:
    return (
        f"apiVersion: modelplane.io/v1alpha1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n"
        f"  source: {{uri: '{uri}'}}\n  format: onnx\n  task: classification\n"
        f"  scaling: {{minReplicas: {replicas}, maxReplicas: 2}}\n"
        "  rollout: {strategy: Immediate}\n"
    )


@pytest.mark.slow
def test_a_revision_keeps_the_digest_its_tag_named_when_it_was_made(
    platform: Platform, basic_registry: Registry, oras: Oras, iris_dir: Path, tmp_path: Path
) -> None:
    name, reference = "iris-tagged", f"{basic_registry.host}/models/tagged:stable"
    oras.push(reference, "model.onnx", cwd=iris_dir)
    pinned = oras.resolve(reference)
    manifest = tmp_path / "tagged.yaml"
    manifest.write_text(_tagged(name, f"oci://{reference}", 1))
    assert platform.cli("apply", "-f", str(manifest)).returncode == 0
    platform.wait_condition(name, "Ready", "True", "RevisionReady", timeout=90)
    revision = platform.model(name)["status"]["revisions"][0]
    assert revision["source"] == f"oci://{basic_registry.host}/models/tagged@{pinned}"

    # The tag moves to something that is not a model at all. A second replica of the same
    # revision, started now, asks the registry for the revision's digest, not the tag.
    (tmp_path / "model.onnx").write_text("not a model")
    oras.push(reference, "model.onnx", cwd=tmp_path)
    assert oras.resolve(reference) != pinned
    manifest.write_text(_tagged(name, f"oci://{reference}", 2))
    assert platform.cli("apply", "-f", str(manifest)).returncode == 0

    def both_ready() -> bool:
        found = platform.model(name)["status"]["revisions"]
        return [(r["name"], r.get("readyReplicas")) for r in found] == [(f"{name}-r1", 2)]

    wait_for(both_ready, "two ready replicas of r1", timeout=90)
    assert platform.infer(name, [SETOSA]).json()["outputs"][0]["data"] == [0]
