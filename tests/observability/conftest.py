"""Fixtures for observability tests: a real OpenTelemetry Collector for the session.

A cold build of the collector takes minutes, so its setup is kept out of the per-test limit
(``timeout(func_only=True)``), as the Kubernetes control plane's is."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.observability.collector import Collector, collector_binary

TEST_SECONDS = 120


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "collector" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(TEST_SECONDS, func_only=True), append=True)


@pytest.fixture(scope="session")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    running = Collector(collector_binary(), tmp_path_factory.mktemp("otelcol"))
    yield running
    running.stop()
