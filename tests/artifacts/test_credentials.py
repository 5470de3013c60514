"""``source.credentials`` in embedded mode: a credentials file gives the fetch, and only the
fetch, what it needs; the model's process never holds the secret, and no status, event, log or
metric a user can see says it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.artifacts.s3server import BUCKET, S3Server
from tests.platform.conftest import Platform, running_in

SETOSA = [5.1, 3.5, 1.4, 0.2]
NAME = "iris-private"


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Path:
    directory = tmp_path_factory.mktemp("credentials")
    reader = directory / "s3-reader"
    reader.write_text(
        "# the read-only account of the model bucket\n"
        f"AWS_ACCESS_KEY_ID={s3.reader.access_key}\n"
        f"export AWS_SECRET_ACCESS_KEY='{s3.reader.secret_key}'\n"
    )
    reader.chmod(0o600)
    shared = directory / "shared"
    shared.write_text(reader.read_text())
    shared.chmod(0o644)
    return directory


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, credentials: Path) -> Iterator[Platform]:
    # No AWS variables: without the credentials file the store refuses every request.
    env = {"MODELPLANE_CREDENTIALS": str(credentials)}
    cache = tmp_path_factory.mktemp("artifact-cache")
    yield from running_in(
        tmp_path_factory, "credentials-platform", env=env, options=("--cache-dir", str(cache))
    )


def apply(platform: Platform, path: Path, s3: S3Server, key: str, secret: str, sha: str) -> None:
    path.write_text(
        f"apiVersion: modelplane.io/v1alpha1\nkind: Model\nmetadata:\n  name: {NAME}\nspec:\n"
        f"  source:\n    uri: s3://{BUCKET}/{key}\n    sha256: '{sha}'\n"
        f"    endpoint: {s3.endpoint}\n    credentials: {{secret: {secret}}}\n"
        "  format: onnx\n  task: classification\n  rollout: {strategy: Immediate}\n"
    )
    applied = platform.cli("apply", "-f", str(path))
    assert applied.returncode == 0, applied.stderr


@pytest.mark.slow
def test_credentials_reach_the_fetch_only_and_leak_nowhere(
    platform: Platform, s3: S3Server, iris_dir: Path, tmp_path: Path
) -> None:
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(os.environ)
    data = (iris_dir / "model.onnx").read_bytes()
    s3.client().put_object(Bucket=BUCKET, Key="private/iris.onnx", Body=data)
    digest = hashlib.sha256(data).hexdigest()
    apply(platform, tmp_path / "m.yaml", s3, "private/iris.onnx", "s3-reader", digest)
    platform.wait_condition(NAME, "Ready", "True", "RevisionReady", timeout=90)
    reply = platform.infer(NAME, [SETOSA])
    assert reply.status_code == 200, reply.text
    secret = s3.reader.secret_key
    for pid in platform.replica_pids(f"{NAME}-r1"):
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert secret.encode() not in environ, "the model's process holds the secret"

    # A credentials file others may read is refused, saying how to fix it; r1 keeps serving.
    apply(platform, tmp_path / "m.yaml", s3, "private/iris.onnx", "shared", digest)
    stalled = platform.wait_condition(NAME, "Stalled", "True", "ArtifactUnavailable", timeout=120)
    assert "may be read by others: chmod 600" in stalled["message"]
    assert platform.infer(NAME, [SETOSA]).headers["x-modelplane-revision"] == f"{NAME}-r1"
    # A secret that does not exist: named, with where it was looked for.
    apply(platform, tmp_path / "m.yaml", s3, "private/iris.onnx", "nowhere", digest)
    stalled = platform.wait_condition(NAME, "Stalled", "True", "ArtifactUnavailable", timeout=120)
    assert "credentials 'nowhere'" in stalled["message"]

    described = platform.cli("describe", "model", NAME)
    seen = [str(platform.model(NAME)), described.stdout, platform.log.read_text()]
    seen += [log.read_text() for log in (platform.state_dir / "logs").glob("*.log")]
    seen += [
        httpx.get(f"{platform.api}/metrics").text,
        httpx.get(f"{platform.gateway}/metrics").text,
    ]
    assert not [text for text in seen if secret in text]
