"""Fixtures of the artifact tests: a real S3-compatible store, and a proxy in front of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.artifacts.proxy import CountingProxy
from tests.artifacts.s3server import S3Server, versitygw_binary


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(versitygw_binary(), tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


@pytest.fixture
def proxy(s3: S3Server) -> Iterator[CountingProxy]:
    """The store seen through a counting proxy: replicas fetch through it, tests read how many
    bytes went by."""
    counting = CountingProxy(("127.0.0.1", s3.port))
    yield counting
    counting.stop()


# Real OCI registries and the ORAS CLI that pushes to them.
from tests.artifacts.registry import Oras, Registry, oras_binary  # noqa: E402


@pytest.fixture(scope="session")
def oras(tmp_path_factory: pytest.TempPathFactory) -> Oras:
    """The ORAS CLI, with a Docker config of its own that ``oras login`` writes."""
    return Oras(oras_binary(), tmp_path_factory.mktemp("oras-config"))


def _registry(factory: pytest.TempPathFactory, oras: Oras, auth: str) -> Iterator[Registry]:
    running = Registry(factory.mktemp(f"registry-{auth}"), auth)
    try:
        if auth != "none":
            oras.login(running)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, oras: Oras) -> Iterator[Registry]:
    """A real OCI registry anyone may pull from and push to."""
    yield from _registry(tmp_path_factory, oras, "none")


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory, oras: Oras) -> Iterator[Registry]:
    """A real OCI registry with Basic authentication (htpasswd); ``oras`` is logged in."""
    yield from _registry(tmp_path_factory, oras, "htpasswd")


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory, oras: Oras) -> Iterator[Registry]:
    """A real OCI registry with token authentication; ``oras`` is logged in."""
    yield from _registry(tmp_path_factory, oras, "token")
