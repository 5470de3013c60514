"""The content-addressed cache: entries appear whole, eviction is least recently used and never
takes what a process holds."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelplane.artifacts import Cache, artifact_cache, parse_size

HOLD_AND_WAIT = """
import sys
from pathlib import Path
from modelplane.artifacts import artifact_cache
hold = artifact_cache(Path(sys.argv[1])).hold(sys.argv[2])
print("holding", flush=True)
sys.stdin.read()
"""


def add(cache: Cache, data: bytes, used_at: float) -> str:
    digest = hashlib.sha256(data).hexdigest()
    with cache.fetching(digest) as staging:
        staging.content.mkdir(parents=True)
        (staging.content / "model.bin").write_bytes(data)
        path = cache.install(staging, digest, f"s3://bucket/{digest[:8]}")
    os.utime(path.parent / ".entry.json", (used_at, used_at))
    return digest


def test_an_installed_entry_is_found_by_its_digest_and_leaves_no_staging(tmp_path: Path) -> None:
    cache = artifact_cache(tmp_path)
    digest = add(cache, b"weights", 1000)
    found = cache.lookup(digest)
    assert found is not None
    assert found.read_bytes() == b"weights"
    assert list((cache.root / "partial").iterdir()) == []
    (entry,) = cache.entries()
    assert (entry.digest, entry.size, entry.path) == (digest, 7, found)
    assert cache.lookup("0" * 64) is None


def test_eviction_goes_least_recently_used_first_down_to_the_bound(tmp_path: Path) -> None:
    cache = artifact_cache(tmp_path)
    old = add(cache, b"a" * 100, 1000)
    middle = add(cache, b"b" * 100, 2000)
    new = add(cache, b"c" * 100, 3000)
    cache.lookup(old)  # used now: the most recent
    evicted = cache.prune(200)
    assert [e.digest for e in evicted] == [middle]
    assert {e.digest for e in cache.entries()} == {old, new}
    assert cache.prune(0)
    assert cache.entries() == []


def test_an_entry_a_process_holds_is_never_evicted(tmp_path: Path) -> None:
    cache = artifact_cache(tmp_path)
    held = add(cache, b"in use" * 10, 1000)
    free = add(cache, b"idle" * 10, 2000)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_WAIT, str(tmp_path), held],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "holding\n"
        assert cache.in_use(held)
        assert not cache.in_use(free)
        assert [e.digest for e in cache.prune(0)] == [free]
        assert [e.digest for e in cache.entries()] == [held]
    finally:
        holder.communicate("", timeout=10)
    assert [e.digest for e in cache.prune(0)] == [held]  # its holder is gone


def test_a_bounded_cache_evicts_as_it_installs(tmp_path: Path) -> None:
    cache = Cache(tmp_path, max_bytes=250)
    first = add(cache, b"1" * 100, 1000)
    second = add(cache, b"2" * 100, 2000)
    third = add(cache, b"3" * 100, 3000)
    assert first not in {e.digest for e in cache.entries()}
    assert {e.digest for e in cache.entries()} == {second, third}


def test_prune_drops_interrupted_downloads_nobody_resumes(tmp_path: Path) -> None:
    cache = artifact_cache(tmp_path)
    with cache.fetching("f" * 64) as staging:
        staging.content.mkdir(parents=True)
        (staging.content / "model.bin").write_bytes(b"half")
    assert cache.prune_partial() == ["f" * 64]
    assert list((cache.root / "partial").iterdir()) == []


@pytest.mark.parametrize(
    ("text", "size"), [("1024", 1024), ("20Gi", 20 << 30), ("1.5Mi", 3 << 19), ("2G", 2 * 10**9)]
)
def test_sizes_read_like_kubernetes_quantities(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_a_cache_size_that_is_not_a_size_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelplane", "up", "--state-dir", str(tmp_path),
         "--cache-size", "lots"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--cache-size: 'lots' is not a size; write bytes, or a number with a unit" in done.stderr
    assert not list(tmp_path.iterdir())  # refused before anything started
