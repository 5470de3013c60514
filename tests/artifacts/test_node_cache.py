"""The node cache as it runs on a node: the agent is a real ``modelplane node-cache`` process,
and each "pod" is a real ``modelplane fetch`` with a cache of its own, as an init container's
emptyDir is. The second pod on the node takes the artifact from the agent without a byte from
the store; the agent keeps only what matches its digest; a dead agent costs nothing but time."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelplane.artifacts import Limits, digest_of
from modelplane.artifacts.tars import tar_chunks
from tests.artifacts.proxy import CountingProxy
from tests.artifacts.registry import Oras, Registry
from tests.artifacts.s3server import BUCKET, S3Server
from tests.artifacts.test_s3 import put
from tests.platform.conftest import wait_for
from tests.processes import free_port, modelplane, stop_process

MiB = 1 << 20


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[str]:
    port, log = free_port(), tmp_path / "agent.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            modelplane("node-cache", "--cache-dir", str(tmp_path / "node"), "--port", str(port),
                       "--log-format", "text"),
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the agent exited:\n{log.read_text()}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(serving, "the node cache agent", timeout=30)
    yield url
    stop_process(process)


def pod_fetch(
    pod: Path, uri: str, sha256: str | None, env: dict[str, str], node_cache: str
) -> dict[str, str]:
    """One pod's init step: ``modelplane fetch`` into the pod's own cache."""
    source = {"uri": uri, **({"sha256": sha256} if sha256 else {})}
    manifest = {"apiVersion": "modelplane.io/v1alpha1", "kind": "Model",
                "metadata": {"name": "weights"},
                "spec": {"source": source, "format": "onnx", "task": "classification"}}  # fmt: skip
    done = subprocess.run(
        modelplane("fetch", "--cache-dir", str(pod), "--node-cache", node_cache),
        env={**os.environ, **env, "MODELPLANE_MANIFEST": json.dumps(manifest)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_the_second_pod_on_a_node_fetches_nothing_from_the_store(
    s3: S3Server, proxy: CountingProxy, agent: str, tmp_path: Path
) -> None:
    data = os.urandom(20 * MiB)
    digest = put(s3, "node/weights.bin", data)
    env = s3.reader.env(proxy.endpoint)
    uri = f"s3://{BUCKET}/node/weights.bin"
    first = pod_fetch(tmp_path / "pod-1", uri, digest, env, agent)
    assert Path(first["path"]).read_bytes() == data
    assert proxy.received >= len(data)
    proxy.reset()
    second = pod_fetch(tmp_path / "pod-2", uri, digest, env, agent)
    assert Path(second["path"]).read_bytes() == data
    assert proxy.received == 0  # from the node's agent, not the store
    assert Path(second["path"]).parent != Path(first["path"]).parent


def test_an_unpinned_oci_digest_is_found_by_its_reference(
    registry: Registry, oras: Oras, agent: str, iris_dir: Path, tmp_path: Path
) -> None:
    """A revision records a tag resolved to its digest, without a content digest: the second
    pod finds the content by that immutable reference, and never asks the registry for it."""
    oras.push(f"{registry.host}/node/iris:v1", "model.onnx", cwd=iris_dir)
    pinned = oras.resolve(f"{registry.host}/node/iris:v1")
    counting = CountingProxy(("127.0.0.1", registry.port))
    try:
        uri = f"oci://127.0.0.1:{counting.port}/node/iris@{pinned}"
        first = pod_fetch(tmp_path / "pod-1", uri, None, {}, agent)
        assert counting.received > 0
        counting.reset()
        second = pod_fetch(tmp_path / "pod-2", uri, None, {}, agent)
    finally:
        counting.stop()
    assert counting.received == 0
    assert second["digest"] == first["digest"] == digest_of(iris_dir / "model.onnx", Limits(), "")
    assert Path(second["path"]).read_bytes() == (iris_dir / "model.onnx").read_bytes()


def test_the_agent_keeps_nothing_that_does_not_match_its_digest(agent: str, tmp_path: Path) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"real weights")
    right = digest_of(weights, Limits(), "")
    wrong = "0" * 64
    refused = httpx.put(f"{agent}/v1/artifacts/{wrong}", content=tar_chunks(weights))
    assert refused.status_code == 422
    assert f"the upload has digest {right}, not {wrong}" in refused.json()["error"]
    assert httpx.get(f"{agent}/v1/artifacts/{wrong}").status_code == 404
    kept = httpx.put(f"{agent}/v1/artifacts/{right}", content=tar_chunks(weights))
    assert kept.status_code == 201
    assert httpx.head(f"{agent}/v1/artifacts/{right}").status_code == 200


def test_a_pod_fetches_from_the_store_when_the_agent_is_down(
    s3: S3Server, proxy: CountingProxy, tmp_path: Path
) -> None:
    data = os.urandom(MiB)
    digest = put(s3, "node/small.bin", data)
    nowhere = f"http://127.0.0.1:{free_port()}"
    found = pod_fetch(tmp_path / "pod", f"s3://{BUCKET}/node/small.bin", digest,
                      s3.reader.env(proxy.endpoint), nowhere)  # fmt: skip
    assert Path(found["path"]).read_bytes() == data
