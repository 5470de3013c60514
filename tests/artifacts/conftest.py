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
