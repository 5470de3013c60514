"""``oci://`` artifacts against a real OCI registry, pushed with the real ORAS CLI: files,
directories and modelcar images fetched as pushed, tags pinned to manifest digests, Basic and
token logins, and a registry's damaged blob or a layer that would escape its directory refused."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from modelplane.api import Source
from modelplane.artifacts import Fetcher, FetchSettings, Limits, Transfer, artifact_cache, digest_of
from modelplane.errors import (
    ArtifactAccessDeniedError,
    ArtifactNotFoundError,
    ArtifactUnreachableError,
    DigestMismatchError,
    UnsafeArtifactError,
)
from tests.artifacts.proxy import CountingProxy
from tests.artifacts.registry import Account, Oras, Registry
from tests.processes import free_port

MiB = 1 << 20


@pytest.fixture(autouse=True)
def no_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither this machine's Docker logins nor the environment's reach a test unless it says."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    for name in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD", "MODELPLANE_INSECURE_REGISTRIES"):
        monkeypatch.delenv(name, raising=False)


def fetcher(cache_dir: Path, part_size: int = 16 * MiB) -> Fetcher:
    settings = FetchSettings(transfer=Transfer(part_size=part_size, workers=4, attempts=2))
    return Fetcher(artifact_cache(cache_dir), cache_dir, settings)


def fetch(cache_dir: Path, uri: str, sha256: str | None = None, part_size: int = 16 * MiB) -> Path:
    with fetcher(cache_dir, part_size) as fetching:
        return fetching.fetch(Source(uri=uri, sha256=sha256))


def installed(cache_dir: Path) -> list[Path]:
    entries = cache_dir / "artifacts" / "entries"
    return list(entries.iterdir()) if entries.exists() else []


def write(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_a_file_pushed_with_oras_is_fetched_as_it_was_and_its_tag_pins_to_the_manifest_digest(
    registry: Registry, oras: Oras, iris_dir: Path, tmp_path: Path
) -> None:
    manifest = oras.push(f"{registry.host}/iris:v1", "model.onnx", cwd=iris_dir)
    with fetcher(tmp_path) as fetching:
        pinned = fetching.pin(Source(uri=f"oci://{registry.host}/iris:v1"))
    assert pinned.uri == f"oci://{registry.host}/iris@{manifest}"
    sha256 = digest_of(iris_dir / "model.onnx", Limits(), "")
    got = fetch(tmp_path, pinned.uri, sha256)
    assert got.name == "model.onnx"
    assert got.read_bytes() == (iris_dir / "model.onnx").read_bytes()


def test_a_digest_reference_keeps_fetching_what_it_named_after_the_tag_moves(
    registry: Registry, oras: Oras, tmp_path: Path
) -> None:
    first = write(tmp_path / "first", {"model.bin": b"first release"})
    second = write(tmp_path / "second", {"model.bin": b"second release"})
    oras.push(f"{registry.host}/moving:stable", "model.bin", cwd=first)
    with fetcher(tmp_path / "cache") as fetching:
        pinned = fetching.pin(Source(uri=f"oci://{registry.host}/moving:stable")).uri
    oras.push(f"{registry.host}/moving:stable", "model.bin", cwd=second)
    assert fetch(tmp_path / "a", pinned).read_bytes() == b"first release"
    assert fetch(tmp_path / "b", f"oci://{registry.host}/moving:stable").read_bytes() == (
        b"second release"
    )


def test_an_unpinned_digest_reference_is_fetched_once_on_this_machine(
    registry: Registry, oras: Oras, iris_dir: Path, tmp_path: Path
) -> None:
    """A revision records a tag resolved to a digest and no content digest: the replicas after
    the first find it in the cache by that reference, without asking the registry."""
    manifest = oras.push(f"{registry.host}/once:v1", "model.onnx", cwd=iris_dir)
    counting = CountingProxy(("127.0.0.1", registry.port))
    try:
        uri = f"oci://127.0.0.1:{counting.port}/once@{manifest}"
        first = fetch(tmp_path, uri)
        assert counting.received > 0
        counting.reset()
        assert fetch(tmp_path, uri) == first
    finally:
        counting.stop()
    assert counting.received == 0
    # A tag is never taken from the cache: it may name something else now.
    assert fetch(tmp_path, f"oci://{registry.host}/once:v1") == first


def test_several_files_make_a_directory_and_a_large_one_comes_in_ranged_parts(
    registry: Registry, oras: Oras, tmp_path: Path
) -> None:
    weights = os.urandom(40 * MiB + 123)
    files = {"config.json": b'{"layers": 2}', "vocab.txt": b"a\nb\n", "weights.bin": weights}
    local = write(tmp_path / "local", files)
    oras.push(f"{registry.host}/models/llm:v1", *files, cwd=local)
    got = fetch(tmp_path / "cache", f"oci://{registry.host}/models/llm:v1", part_size=8 * MiB)
    assert got.name == "llm"
    assert digest_of(got, Limits(), "") == digest_of(local, Limits(), "")
    blob = "sha256:" + hashlib.sha256(weights).hexdigest()
    ranged = [
        line
        for line in registry.log.read_text().splitlines()
        if f"/blobs/{blob}" in line and re.search(r"http\.response\.status=206", line)
    ]
    assert len(ranged) == 6  # 40 MiB and a little in parts of 8 MiB


def test_a_directory_pushed_with_oras_is_unpacked_under_its_name(
    registry: Registry, oras: Oras, tmp_path: Path
) -> None:
    files = {"vocab.json": b"{}", "merges/part-1.txt": b"a b\n", "merges/part-2.txt": b"c d\n"}
    tokenizer = write(tmp_path / "work" / "tokenizer", files)
    oras.push(f"{registry.host}/tokenizer:v1", "tokenizer", cwd=tmp_path / "work")
    got = fetch(tmp_path / "cache", f"oci://{registry.host}/tokenizer:v1")
    assert got.name == "tokenizer"
    assert digest_of(got, Limits(), "") == digest_of(tokenizer, Limits(), "")


def layer(path: Path, entries: list[tarfile.TarInfo], data: dict[str, bytes]) -> Path:
    """A tar+gzip image layer of ``entries``, files holding ``data`` by name."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for entry in entries:
            content = data.get(entry.name)
            if content is not None:
                entry.size = len(content)
            archive.addfile(entry, io.BytesIO(content) if content is not None else None)
    path.write_bytes(gzip.compress(buffer.getvalue()))
    return path


def entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = (
        kind,
        linkname,
        0o755 if kind == tarfile.DIRTYPE else 0o644,
    )
    return info


def test_a_modelcar_image_serves_its_models_directory_with_later_layers_applied(
    registry: Registry, oras: Oras, iris_dir: Path, tmp_path: Path
) -> None:
    onnx = (iris_dir / "model.onnx").read_bytes()
    base = layer(tmp_path / "base.tar.gz", [
        entry("bin", tarfile.DIRTYPE), entry("bin/sh", tarfile.SYMTYPE, "/bin/busybox"),
        entry("models", tarfile.DIRTYPE), entry("models/model.onnx"), entry("models/stale.txt"),
        entry("models/old", tarfile.DIRTYPE), entry("models/old/notes.txt"),
    ], {"models/model.onnx": onnx, "models/stale.txt": b"x",
        "models/old/notes.txt": b"y"})  # fmt: skip
    top = layer(tmp_path / "top.tar.gz", [
        entry("models/.wh.stale.txt"), entry("models/old/.wh..wh..opq"),
        entry("models/old/kept.txt"), entry("models/labels.txt"),
        entry("models/same.onnx", tarfile.LNKTYPE, "models/model.onnx"),
    ], {"models/old/kept.txt": b"z", "models/labels.txt": b"setosa\n", "models/.wh.stale.txt": b"",
        "models/old/.wh..wh..opq": b""})  # fmt: skip
    oras.push_image(f"{registry.host}/modelcar:v1", [base, top], tmp_path)
    got = fetch(tmp_path / "cache", f"oci://{registry.host}/modelcar:v1")
    expected = write(tmp_path / "expected", {
        "model.onnx": onnx, "same.onnx": onnx, "labels.txt": b"setosa\n", "old/kept.txt": b"z",
    })  # fmt: skip
    assert got.name == "modelcar"
    assert digest_of(got, Limits(), "") == digest_of(expected, Limits(), "")


ESCAPES: dict[str, Callable[[], tarfile.TarInfo]] = {
    "../escape": lambda: entry("../escape"),
    "/models/absolute.txt": lambda: entry("/models/absolute.txt"),
    "models/passwd": lambda: entry("models/passwd", tarfile.SYMTYPE, "../../etc/passwd"),
    "models/hosts": lambda: entry("models/hosts", tarfile.LNKTYPE, "etc/hosts"),
    "models/null": lambda: entry("models/null", tarfile.CHRTYPE),
}


@pytest.mark.parametrize("name", list(ESCAPES))
def test_a_layer_entry_that_would_escape_refuses_the_image_naming_the_entry(
    name: str, registry: Registry, oras: Oras, tmp_path: Path
) -> None:
    bad = ESCAPES[name]()
    data = {bad.name: b"owned"} if bad.isfile() else {}
    tar = layer(tmp_path / "bad.tar.gz", [entry("models", tarfile.DIRTYPE), bad], data)
    oras.push_image(f"{registry.host}/escape:v1", [tar], tmp_path)
    with pytest.raises(UnsafeArtifactError, match=re.escape(repr(name))):
        fetch(tmp_path / "cache", f"oci://{registry.host}/escape:v1")
    assert not installed(tmp_path / "cache")


def test_a_blob_altered_in_the_registry_is_refused_naming_both_digests(
    registry: Registry, oras: Oras, tmp_path: Path
) -> None:
    data = os.urandom(MiB)
    write(tmp_path / "work", {"weights.bin": data})
    oras.push(f"{registry.host}/tampered:v1", "weights.bin", cwd=tmp_path / "work")
    blob = "sha256:" + hashlib.sha256(data).hexdigest()
    altered = bytearray(data)
    altered[1000] ^= 0xFF
    registry.blob_file(blob).write_bytes(altered)
    actual = "sha256:" + hashlib.sha256(altered).hexdigest()
    with pytest.raises(DigestMismatchError, match=f"{blob}.*{actual}"):
        fetch(tmp_path / "cache", f"oci://{registry.host}/tampered:v1")
    assert not installed(tmp_path / "cache")


@pytest.mark.parametrize("reference", ["nowhere:v1", "iris:no-such-tag", "iris@sha256:" + "0" * 64])
def test_an_unknown_repository_tag_or_digest_is_not_found(
    reference: str, registry: Registry, oras: Oras, iris_dir: Path, tmp_path: Path
) -> None:
    oras.push(f"{registry.host}/iris:v1", "model.onnx", cwd=iris_dir)
    uri = f"oci://{registry.host}/{reference}"
    with pytest.raises(ArtifactNotFoundError, match=f"artifact {re.escape(uri)} not found at"):
        fetch(tmp_path, uri)


def test_a_registry_that_does_not_answer_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(ArtifactUnreachableError, match="did not answer"):
        fetch(tmp_path, f"oci://127.0.0.1:{free_port()}/iris:v1")


@pytest.fixture(params=["basic_registry", "token_registry"])
def private(request: pytest.FixtureRequest) -> Registry:
    """A registry that wants a login: Basic (htpasswd), then tokens from a token service."""
    found: Registry = request.getfixturevalue(request.param)
    return found


def test_a_private_registry_serves_the_right_login_from_the_environment_or_the_docker_config(
    private: Registry, oras: Oras, iris_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = oras.push(f"{private.host}/private/iris:v1", "model.onnx", cwd=iris_dir)
    uri = f"oci://{private.host}/private/iris:v1"
    for name, value in private.account.env().items():
        monkeypatch.setenv(name, value)
    assert fetch(tmp_path / "env", uri).read_bytes() == (iris_dir / "model.onnx").read_bytes()
    monkeypatch.delenv("REGISTRY_USERNAME")
    monkeypatch.delenv("REGISTRY_PASSWORD")
    monkeypatch.setenv("DOCKER_CONFIG", str(oras.config_dir))  # where oras login wrote
    with fetcher(tmp_path / "docker") as fetching:
        assert fetching.pin(Source(uri=uri)).uri == f"oci://{private.host}/private/iris@{manifest}"
        assert fetching.fetch(Source(uri=uri)).name == "model.onnx"


def test_a_private_registry_denies_a_wrong_login_or_none_and_never_shows_the_password(
    private: Registry, oras: Oras, iris_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    oras.push(f"{private.host}/private/iris:v1", "model.onnx", cwd=iris_dir)
    uri = f"oci://{private.host}/private/iris:v1"
    with pytest.raises(ArtifactAccessDeniedError, match="and found none") as denied:
        fetch(tmp_path / "none", uri)
    assert f"access to artifact {uri} at the registry {private.host}" in str(denied.value)
    wrong = Account(private.account.username, private.account.password + "-wrong")
    for name, value in wrong.env().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ArtifactAccessDeniedError, match="REGISTRY_USERNAME") as denied:
        fetch(tmp_path / "wrong", uri)
    assert wrong.password not in str(denied.value)
    assert private.account.password not in str(denied.value)
