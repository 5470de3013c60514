"""End to end: ``modelplane up`` serves iris from ``s3://`` with credentials in its environment,
and a revision whose artifact cannot be had stalls as ArtifactUnavailable while the previous one
keeps serving, with no secret anywhere a user can see."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.artifacts.s3server import BUCKET, S3Server
from tests.platform.conftest import Platform, running_in

SETOSA = [5.1, 3.5, 1.4, 0.2]
NAME = "iris-s3"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Iterator[Platform]:
    cache = tmp_path_factory.mktemp("artifact-cache")
    yield from running_in(
        tmp_path_factory, "s3-platform",
        env=s3.reader.env(s3.endpoint), options=("--cache-dir", str(cache), "--cache-size", "1Gi"),
    )  # fmt: skip


def apply(platform: Platform, path: Path, uri: str, sha256: str) -> None:
    path.write_text(
        f"apiVersion: modelplane.io/v1alpha1\nkind: Model\nmetadata:\n  name: {NAME}\nspec:\n"
        f"  source:\n    uri: {uri}\n    sha256: '{sha256}'\n  format: onnx\n"
        "  task: classification\n  rollout: {strategy: Immediate}\n"
    )
    applied = platform.cli("apply", "-f", str(path))
    assert applied.returncode == 0, applied.stderr


@pytest.mark.slow
def test_iris_from_s3_serves_and_a_missing_artifact_stalls_while_the_old_revision_serves(
    platform: Platform, s3: S3Server, iris_dir: Path, tmp_path: Path
) -> None:
    data = (iris_dir / "model.onnx").read_bytes()
    s3.client().put_object(Bucket=BUCKET, Key="e2e/iris.onnx", Body=data)
    digest = hashlib.sha256(data).hexdigest()
    apply(platform, tmp_path / "m.yaml", f"s3://{BUCKET}/e2e/iris.onnx", digest)
    platform.wait_condition(NAME, "Ready", "True", "RevisionReady", timeout=90)
    reply = platform.infer(NAME, [SETOSA])
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-modelplane-revision"] == f"{NAME}-r1"

    missing = f"s3://{BUCKET}/e2e/missing.onnx"
    apply(platform, tmp_path / "m.yaml", missing, "0" * 64)
    stalled = platform.wait_condition(NAME, "Stalled", "True", "ArtifactUnavailable", timeout=120)
    assert f"rolled back to {NAME}-r1: {NAME}-r2 cannot get its artifact" in stalled["message"]
    assert f"artifact {missing} not found at {s3.endpoint}" in stalled["message"]
    reply = platform.infer(NAME, [SETOSA])
    assert reply.status_code == 200
    assert reply.headers["x-modelplane-revision"] == f"{NAME}-r1"

    secret = s3.reader.secret_key
    described = platform.cli("describe", "model", NAME)
    assert "ArtifactUnavailable" in described.stdout
    seen = [str(platform.model(NAME)), described.stdout, platform.log.read_text()]
    seen += [log.read_text() for log in (platform.state_dir / "logs").glob("*.log")]
    assert not [text for text in seen if secret in text]
