"""Fixtures of the artifact tests: a proxy in front of the S3 store (the store itself and the
OCI registries are the whole suite's, in tests/conftest.py: the cluster tests serve from them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.artifacts.proxy import CountingProxy
from tests.artifacts.s3server import S3Server


@pytest.fixture
def proxy(s3: S3Server) -> Iterator[CountingProxy]:
    """The store seen through a counting proxy: replicas fetch through it, tests read how many
    bytes went by."""
    counting = CountingProxy(("127.0.0.1", s3.port))
    yield counting
    counting.stop()
