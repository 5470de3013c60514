"""Directory artifacts on this machine: the manifest digest, and what a directory may hold."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from modelplane.api import Source
from modelplane.artifacts import Fetcher, Limits, artifact_cache, digest_of, file_sha256
from modelplane.artifacts.paths import safe_relative
from modelplane.artifacts.sources import FetchSettings
from modelplane.errors import ArtifactNotFoundError, DigestMismatchError, UnsafeArtifactError


def make_tree(root: Path) -> Path:
    (root / "tokenizer").mkdir(parents=True)
    (root / "config.json").write_text('{"layers": 2}')
    (root / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    (root / "weights.bin").write_bytes(bytes(range(256)) * 10)
    (root / "empty").mkdir()
    return root


def fetcher(tmp_path: Path, limits: Limits | None = None) -> Fetcher:
    settings = FetchSettings(limits=limits or Limits())
    return Fetcher(artifact_cache(tmp_path / "cache"), tmp_path, settings)


def test_the_manifest_digest_is_the_sha256_of_sorted_lines(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "model")
    lines = []
    for relative in ("config.json", "tokenizer/vocab.txt", "weights.bin"):  # sorted by path
        data = (root / relative).read_bytes()
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {len(data)}  {relative}\n")
    expected = hashlib.sha256("".join(lines).encode()).hexdigest()
    assert digest_of(root, Limits(), "file:///model/") == expected
    assert digest_of(root / "weights.bin", Limits(), "x") == file_sha256(root / "weights.bin")


def test_a_pinned_directory_is_served_in_place_and_a_changed_one_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "model")
    pinned = digest_of(root, Limits(), "")
    source = Source(uri=root.as_uri() + "/", sha256=pinned)
    assert fetcher(tmp_path).fetch(source) == root
    (root / "tokenizer" / "vocab.txt").write_text("a\nb\nc\n")
    with pytest.raises(
        DigestMismatchError, match=f"has manifest digest .* but the spec pins {pinned}"
    ):
        fetcher(tmp_path).fetch(source)


def test_a_missing_directory_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFoundError, match=r"not found \(looked at .*absent"):
        fetcher(tmp_path).fetch(Source(uri=(tmp_path / "absent").as_uri()))


def test_a_symlink_pointing_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "model")
    secret = tmp_path / "secret.txt"
    secret.write_text("not part of the model")
    os.symlink(secret, root / "leak.txt")
    with pytest.raises(UnsafeArtifactError, match=r"leak\.txt is a symlink pointing out"):
        fetcher(tmp_path).fetch(Source(uri=root.as_uri()))


def test_a_symlink_inside_the_directory_counts_as_its_target(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "model")
    os.symlink(root / "config.json", root / "alias.json")
    assert fetcher(tmp_path).fetch(Source(uri=root.as_uri())) == root
    relative = tmp_path / "other"
    make_tree(relative)
    os.symlink("..", relative / "tokenizer" / "up")  # inside, and a loop
    with pytest.raises(UnsafeArtifactError, match="symlink to a directory"):
        fetcher(tmp_path).fetch(Source(uri=relative.as_uri()))


def test_too_many_files_or_bytes_are_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "model")
    with pytest.raises(UnsafeArtifactError, match="more than 2 files; refusing it"):
        fetcher(tmp_path, Limits(max_files=2)).fetch(Source(uri=root.as_uri()))
    with pytest.raises(UnsafeArtifactError, match="more than 1000 bytes; refusing it"):
        fetcher(tmp_path, Limits(max_bytes=1000)).fetch(Source(uri=root.as_uri()))


@pytest.mark.parametrize(
    "name", ["../etc/passwd", "a/../../b", "/etc/passwd", "a//b", "./a", "a/.", "", "a\0b"]
)
def test_names_that_escape_are_refused(name: str) -> None:
    with pytest.raises(UnsafeArtifactError, match=r"refusing|not relative"):
        safe_relative(name, "s3://bucket/model/")


def test_ordinary_names_pass() -> None:
    assert safe_relative("tokenizer/vocab.txt", "s3://b/m/") == "tokenizer/vocab.txt"
    assert safe_relative("..hidden/x..y", "s3://b/m/") == "..hidden/x..y"
