"""``hf://`` sources against a hub cache in the library's own layout, holding the real
all-MiniLM-L6-v2: resolution of branches to commits, fetching into the artifact cache, the errors
a user meets, and the token kept out of all of them. No hub is reachable from the tests, so
they run the way a replica runs with ``HF_HUB_OFFLINE=1`` (and, for a hub that is down, against
a loopback port where nothing listens)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants  # the library reads HF_HUB_OFFLINE here, once: before the tests
import pytest

from modelplane.api import Source
from modelplane.artifacts import Fetcher, Limits, artifact_cache, digest_of, manifest_digest
from modelplane.artifacts.digests import ManifestLine, file_sha256
from modelplane.errors import ArtifactNotFoundError, ArtifactUnreachableError, DigestMismatchError
from tests.artifacts.hubcache import REPO, TOKEN, CachedRepo, directory_files, minilm_directory
from tests.processes import free_port


@pytest.fixture(scope="module")
def minilm() -> dict[str, bytes]:
    return directory_files(minilm_directory())


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, minilm: dict[str, bytes]) -> CachedRepo:
    """MiniLM at ``main``, and at ``v2`` a later commit whose README differs."""
    cached = CachedRepo(tmp_path_factory.mktemp("hub-cache"), REPO)
    cached.commit(minilm, "main")
    cached.commit({**minilm, "README.md": b"# all-MiniLM-L6-v2, second edition\n"}, "v2")
    return cached


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))


@pytest.fixture
def fetcher(tmp_path: Path) -> Iterator[Fetcher]:
    with Fetcher(artifact_cache(tmp_path / "modelplane"), tmp_path) as made:
        yield made


def use(monkeypatch: pytest.MonkeyPatch, cached: CachedRepo) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(cached.cache))


def commit_of(cached: CachedRepo, branch: str) -> str:
    return (cached.storage / "refs" / branch).read_text()


def snapshot_digest(snapshot: Path) -> str:
    """The manifest digest of a snapshot, its symlinks followed into the blobs."""
    lines = [
        ManifestLine(p.relative_to(snapshot).as_posix(), p.stat().st_size, file_sha256(p))
        for p in snapshot.rglob("*")
        if p.is_file()
    ]
    return manifest_digest(lines)


def test_the_fixture_is_a_cache_the_library_reads(
    hub: CachedRepo, minilm: dict[str, bytes]
) -> None:
    scanned = huggingface_hub.scan_cache_dir(hub.cache)
    assert not scanned.warnings
    (repo,) = scanned.repos
    assert (repo.repo_id, repo.repo_type) == (REPO, "model")
    assert {name: r.commit_hash for name, r in repo.refs.items()} == {
        "main": commit_of(hub, "main"),
        "v2": commit_of(hub, "v2"),
    }
    for revision in repo.revisions:
        assert {f.file_name for f in revision.files} == {Path(p).name for p in minilm}
    listed = huggingface_hub.get_cached_repo_tree(REPO, revision="v2", cache_dir=hub.cache)
    assert sorted(f.path for f in listed) == sorted(minilm)


def test_branches_resolve_to_their_commits_and_a_commit_to_itself(
    hub: CachedRepo, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, hub)
    main, v2 = commit_of(hub, "main"), commit_of(hub, "v2")
    assert main != v2
    for uri in (f"hf://{REPO}", f"hf://{REPO}@main"):
        assert fetcher.pin(Source(uri=uri)).uri == f"hf://{REPO}@{main}"
    assert fetcher.pin(Source(uri=f"hf://{REPO}@v2")).uri == f"hf://{REPO}@{v2}"
    pinned = Source(uri=f"hf://{REPO}@{v2}")
    assert fetcher.pin(pinned) is pinned


def test_a_commit_arrives_as_a_plain_directory_with_the_snapshots_files_and_digest(
    hub: CachedRepo, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch, minilm: dict[str, bytes]
) -> None:
    use(monkeypatch, hub)
    main = commit_of(hub, "main")
    expected = snapshot_digest(hub.snapshot(main))
    assert expected == digest_of(minilm_directory(), Limits(), "minilm")
    fetched = fetcher.fetch(Source(uri=f"hf://{REPO}@{main}", sha256=expected))
    assert fetched.name == "all-MiniLM-L6-v2"
    assert directory_files(fetched) == minilm
    assert not [p for p in fetched.rglob("*") if p.is_symlink()]
    assert digest_of(fetched, Limits(), "fetched") == expected
    weights = fetched / "model.safetensors"  # the bytes are on disk once, in both caches
    assert weights.stat().st_ino == hub.blob_of(main, "model.safetensors").stat().st_ino


def test_another_branch_fetches_its_own_content(
    hub: CachedRepo, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, hub)
    main = fetcher.fetch(Source(uri=f"hf://{REPO}"))
    v2 = fetcher.fetch(Source(uri=f"hf://{REPO}@v2"))
    assert main != v2
    assert (v2 / "README.md").read_bytes() == b"# all-MiniLM-L6-v2, second edition\n"
    assert (main / "README.md").read_bytes() != (v2 / "README.md").read_bytes()
    assert digest_of(v2, Limits(), "v2") == snapshot_digest(hub.snapshot(commit_of(hub, "v2")))


def test_an_unknown_repository_or_revision_is_not_found_and_says_what_to_do(
    hub: CachedRepo, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, hub)
    said = []
    with pytest.raises(ArtifactNotFoundError) as unknown_repo:
        fetcher.pin(Source(uri="hf://nobody/no-such-model"))
    said.append(str(unknown_repo.value))
    assert "hf://nobody/no-such-model@main is not in the hub cache" in said[-1]
    assert "HF_HUB_OFFLINE=1 forbids asking the hub; fetch it into that cache" in said[-1]
    assert "hf download nobody/no-such-model --revision main" in said[-1]

    with pytest.raises(ArtifactNotFoundError) as unknown_branch:
        fetcher.fetch(Source(uri=f"hf://{REPO}@no-such-branch"))
    said.append(str(unknown_branch.value))
    assert f"hf://{REPO}@no-such-branch is not in the hub cache {hub.cache}" in said[-1]

    missing = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(ArtifactNotFoundError) as unknown_commit:
        fetcher.fetch(Source(uri=f"hf://{REPO}@{missing}"))
    said.append(str(unknown_commit.value))
    assert f"hf://{REPO}@{missing} is not in the hub cache" in said[-1]
    assert not [text for text in said if TOKEN in text]


def test_a_partial_snapshot_is_refused_rather_than_served(
    tmp_path: Path, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = CachedRepo(tmp_path / "hub", "org/small")
    commit = cached.commit({"config.json": b"{}", "weights.bin": b"\1\2\3"}, "main")
    (cached.snapshot(commit) / "weights.bin").unlink()  # as an interrupted download leaves it
    use(monkeypatch, cached)
    with pytest.raises(ArtifactNotFoundError) as partial:
        fetcher.fetch(Source(uri="hf://org/small"))
    assert f"hf://org/small@{commit}: the hub cache {cached.cache} holds only part" in str(
        partial.value
    )


def test_a_damaged_blob_is_refused_and_the_message_says_how_to_repair(
    tmp_path: Path, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = CachedRepo(tmp_path / "hub", "org/small")
    commit = cached.commit({"config.json": b"{}", "weights.bin": b"\1\2\3"}, "main")
    cached.blob_of(commit, "weights.bin").write_bytes(b"\1\2\4")
    use(monkeypatch, cached)
    with pytest.raises(DigestMismatchError) as damaged:
        fetcher.fetch(Source(uri="hf://org/small@main"))
    sha256 = hashlib.sha256(b"\1\2\3").hexdigest()
    assert f"hf://org/small@{commit}: weights.bin in the hub cache does not hold the content" in (
        str(damaged.value)
    )
    assert (
        f"({sha256}); delete the repository from the hub cache (hf cache rm model/org/small)"
        in (str(damaged.value))
    )


def test_with_the_hub_down_a_cached_commit_serves_and_a_branch_is_not_guessed(
    hub: CachedRepo, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch, minilm: dict[str, bytes]
) -> None:
    use(monkeypatch, hub)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert not huggingface_hub.constants.HF_HUB_OFFLINE, "run the tests without HF_HUB_OFFLINE set"
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    main = commit_of(hub, "main")
    fetched = fetcher.fetch(Source(uri=f"hf://{REPO}@{main}", endpoint=down))
    assert directory_files(fetched) == minilm
    with pytest.raises(ArtifactUnreachableError) as unreachable:
        fetcher.pin(Source(uri=f"hf://{REPO}@v2", endpoint=down))
    said = str(unreachable.value)
    assert f"the hub {down} did not serve hf://{REPO}@v2 (ConnectError)" in said
    assert "check source.endpoint or HF_ENDPOINT and that the hub is up" in said
    assert TOKEN not in said
    assert os.environ["HF_TOKEN"] == TOKEN  # it was there to leak, and did not
