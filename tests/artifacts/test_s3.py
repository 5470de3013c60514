"""``s3://`` artifacts against a real S3-compatible store: files and directories pinned and
verified, tampering refused, a killed fetch resumed, one fetch for many replicas, eviction,
and errors that say what is wrong without the secret."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelplane.api import Source
from modelplane.artifacts import (
    Cache,
    Fetcher,
    FetchSettings,
    Limits,
    Transfer,
    artifact_cache,
    digest_of,
)
from modelplane.errors import (
    ArtifactAccessDeniedError,
    ArtifactNotFoundError,
    ArtifactUnreachableError,
    DigestMismatchError,
    UnsafeArtifactError,
)
from tests.artifacts.proxy import CountingProxy
from tests.artifacts.s3server import BUCKET, Identity, S3Server
from tests.processes import free_port

MiB = 1 << 20
# A replica's fetch, as a process of its own: prints the artifact's path.
FETCH = """
import sys
from pathlib import Path
from modelplane.api import Source
from modelplane.artifacts import Fetcher, FetchSettings, Transfer, artifact_cache
cache_dir, uri, digest, part_size, workers = sys.argv[1:6]
transfer = Transfer(part_size=int(part_size), workers=int(workers))
fetcher = Fetcher(artifact_cache(Path(cache_dir)), Path.cwd(), FetchSettings(transfer=transfer))
print(fetcher.fetch(Source(uri=uri, sha256=digest)), flush=True)
"""


def put(s3: S3Server, key: str, data: bytes) -> str:
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=data)
    return hashlib.sha256(data).hexdigest()


def use(monkeypatch: pytest.MonkeyPatch, who: Identity, endpoint: str) -> None:
    """The standard AWS chain finds ``who`` in the environment, as a replica's would."""
    for name, value in who.env(endpoint).items():
        monkeypatch.setenv(name, value)


def fetch(cache_dir: Path, source: Source, part_size: int = 16 * MiB) -> Path:
    """``source`` fetched as a replica would, which then exits (releasing its hold)."""
    settings = FetchSettings(transfer=Transfer(part_size=part_size))
    with Fetcher(artifact_cache(cache_dir), cache_dir, settings) as fetcher:
        return fetcher.fetch(source)


def fetch_in_process(
    cache_dir: Path, uri: str, digest: str, env: dict[str, str], part_size: int = MiB
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", FETCH, str(cache_dir), uri, digest, str(part_size), "2"],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_a_file_is_fetched_verified_and_then_served_from_the_cache(
    s3: S3Server,
    proxy: CountingProxy,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    iris_dir: Path,
) -> None:
    data = (iris_dir / "model.onnx").read_bytes()
    digest = put(s3, "iris/model.onnx", data)
    use(monkeypatch, s3.reader, proxy.endpoint)
    source = Source(uri=f"s3://{BUCKET}/iris/model.onnx", sha256=digest)
    path = fetch(tmp_path, source)
    assert path.read_bytes() == data
    assert path == tmp_path / "artifacts" / "entries" / digest / "model.onnx"
    assert len(data) <= proxy.received < len(data) + 64 * 1024
    proxy.reset()
    assert fetch(tmp_path, source) == path
    assert proxy.received == 0  # a pinned digest in the cache never asks the store


def test_a_directory_is_fetched_and_pinned_by_its_manifest_digest(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = {
        "config.json": b'{"layers": 2}',
        "tokenizer/vocab.txt": b"a\nb\n",
        "weights.bin": os.urandom(3 * MiB + 17),
    }
    local = tmp_path / "local"
    for name, data in files.items():
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(data)
        put(s3, f"tiny/{name}", data)
    pinned = digest_of(local, Limits(), "")
    use(monkeypatch, s3.reader, s3.endpoint)
    source = Source(uri=f"s3://{BUCKET}/tiny/", sha256=pinned)
    got = fetch(tmp_path / "cache", source, part_size=MiB)
    assert got.name == "tiny"
    assert {p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()} == set(files)
    assert (got / "weights.bin").read_bytes() == files["weights.bin"]
    assert digest_of(got, Limits(), "") == pinned


def test_a_tampered_object_is_refused_and_leaves_nothing_in_the_cache(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pinned = put(s3, "tampered/model.onnx", b"the model that was reviewed")
    put(s3, "tampered/model.onnx", b"a model someone swapped in")
    use(monkeypatch, s3.reader, s3.endpoint)
    source = Source(uri=f"s3://{BUCKET}/tampered/model.onnx", sha256=pinned)
    with pytest.raises(DigestMismatchError, match=f"but the spec pins {pinned}; refusing"):
        fetch(tmp_path, source)
    cache = artifact_cache(tmp_path)
    assert cache.entries() == []
    assert [p for p in cache.root.rglob("*") if p.is_file() and p.parent.name != "locks"] == []


def test_a_fetch_killed_midway_resumes_with_only_the_missing_parts(
    s3: S3Server, proxy: CountingProxy, tmp_path: Path
) -> None:
    size, part = 24 * MiB, MiB
    digest = put(s3, "big/weights.bin", os.urandom(size))
    uri, env = f"s3://{BUCKET}/big/weights.bin", s3.reader.env(proxy.endpoint)
    proxy.rate = 6 * MiB  # per second: slow enough to stop it half-way
    first = fetch_in_process(tmp_path, uri, digest, env, part)
    wait_for(lambda: proxy.received >= 8 * MiB, first, "8 MiB through the proxy")
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    (journal,) = (tmp_path / "artifacts" / "partial" / digest / "state").iterdir()
    finished = len(journal.read_text().splitlines()) - 1  # after the header line
    assert 4 <= finished < size // part

    proxy.reset()
    proxy.rate = None
    second = fetch_in_process(tmp_path, uri, digest, env, part)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert hashlib.sha256(Path(out.strip()).read_bytes()).hexdigest() == digest
    assert proxy.ranged_gets == size // part - finished
    missing = size - finished * part
    assert missing <= proxy.received < missing + 64 * 1024  # the rest, and headers


def test_eight_replicas_starting_together_fetch_the_artifact_once(
    s3: S3Server, proxy: CountingProxy, tmp_path: Path
) -> None:
    size = 4 * MiB
    digest = put(s3, "shared/weights.bin", os.urandom(size))
    uri, env = f"s3://{BUCKET}/shared/weights.bin", s3.reader.env(proxy.endpoint)
    replicas = [fetch_in_process(tmp_path, uri, digest, env) for _ in range(8)]
    said = [replica.communicate(timeout=120) for replica in replicas]
    assert [r.returncode for r in replicas] == [0] * 8, [err for _, err in said]
    assert len({out for out, _ in said}) == 1  # one path for all
    assert proxy.ranged_gets == size // MiB  # every part once
    assert size <= proxy.received < size + 8 * 64 * 1024  # HEADs aside, the bytes once


def test_eviction_takes_the_least_recently_used_and_cache_verbs_show_it(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use(monkeypatch, s3.reader, s3.endpoint)
    cache = Cache(tmp_path / "artifacts", max_bytes=int(2.5 * MiB))
    digests = []
    for name in ("a", "b", "c"):
        digest = put(s3, f"evict/{name}.bin", os.urandom(MiB))
        with Fetcher(cache, tmp_path) as replica:  # then done with it
            replica.fetch(Source(uri=f"s3://{BUCKET}/evict/{name}.bin", sha256=digest))
        digests.append(digest)
    assert {e.digest for e in cache.entries()} == set(digests[1:])
    listed = modelplane_cli("cache", "ls", "--cache-dir", str(tmp_path))
    assert f"s3://{BUCKET}/evict/b.bin" in listed
    assert "2 artifacts, 2.0Mi" in listed
    pruned = modelplane_cli("cache", "prune", "--size", "1.5Mi", "--cache-dir", str(tmp_path))
    assert f"evicted {digests[1][:16]}" in pruned
    assert {e.digest for e in cache.entries()} == {digests[2]}


@pytest.mark.parametrize(
    "hostile", ["escape/../../cron.d/job", "escape/a/../../../job", "escape//etc/passwd"]
)
def test_keys_that_escape_the_directory_are_refused(
    hostile: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """AWS S3 takes any key, '..' segments included (Versity S3 Gateway, keeping objects as files,
    refuses them on upload), so a store that lists one is played by a small HTTP server answering
    ListObjectsV2."""
    keys = ["escape/model.onnx", hostile]
    with listing_server(keys) as endpoint:
        use(monkeypatch, Identity("someone", "secret"), endpoint)
        with pytest.raises(UnsafeArtifactError, match=r"escapes its directory|not relative"):
            fetch(tmp_path / "cache", Source(uri=f"s3://{BUCKET}/escape/"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    assert [
        p for p in (tmp_path / "cache").rglob("*") if p.is_file() and "locks" not in p.parts
    ] == []


def test_wrong_credentials_are_denied_without_the_secret_in_the_message(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    put(s3, "private/model.onnx", b"weights")
    source = Source(uri=f"s3://{BUCKET}/private/model.onnx")
    wrong = Identity(s3.reader.access_key, "not-the-secret-" + s3.reader.secret_key[:6])
    for who in (wrong, s3.outsider):
        use(monkeypatch, who, s3.endpoint)
        with pytest.raises(ArtifactAccessDeniedError) as denied:
            fetch(tmp_path, source)
        message = str(denied.value)
        assert f"access to s3://{BUCKET}/private/model.onnx at {s3.endpoint} was denied" in message
        assert "check the credentials" in message
        assert who.secret_key not in message
        assert s3.reader.secret_key not in message


def test_missing_objects_and_prefixes_are_not_found(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    put(s3, "folder/model.onnx", b"weights")
    use(monkeypatch, s3.reader, s3.endpoint)
    with pytest.raises(ArtifactNotFoundError, match=r"not found at .* check the bucket and key"):
        fetch(tmp_path, Source(uri=f"s3://{BUCKET}/absent.onnx"))
    with pytest.raises(ArtifactNotFoundError, match="no objects under that prefix"):
        fetch(tmp_path, Source(uri=f"s3://{BUCKET}/absent/"))
    with pytest.raises(
        ArtifactNotFoundError, match=r"end the URI with '/' \(s3://models/folder/\)"
    ):
        fetch(tmp_path, Source(uri=f"s3://{BUCKET}/folder"))


def test_an_unreachable_store_is_reported_after_retries(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    use(monkeypatch, s3.reader, s3.endpoint)
    source = Source(uri=f"s3://{BUCKET}/iris/model.onnx", endpoint=nowhere)
    with pytest.raises(ArtifactUnreachableError, match=r"did not answer .* after 3 tries") as fail:
        fetch(tmp_path, source)
    assert nowhere in str(fail.value)
    assert not fail.value.permanent


def wait_for(check: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not check():
        if process.poll() is not None:
            raise AssertionError(f"the fetch ended before {what}: {process.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@contextlib.contextmanager
def listing_server(keys: list[str]) -> Iterator[str]:
    """An S3 endpoint that lists ``keys`` under any prefix (and serves nothing else)."""
    contents = "".join(
        f"<Contents><Key>{key}</Key><Size>4</Size><ETag>&quot;e&quot;</ETag></Contents>"
        for key in keys
    )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{BUCKET}</Name><KeyCount>{len(keys)}</KeyCount><IsTruncated>false</IsTruncated>"
        f"{contents}</ListBucketResult>"
    ).encode()

    class Listing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if "list-type=2" in self.path else 404)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Listing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def modelplane_cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "modelplane", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
