"""A real ``modelplane up --auth`` for the fuzzing tests, and Schemathesis run against an API's
own description."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.platform.conftest import Platform, running_in


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from running_in(tmp_path_factory, "fuzzed", options=("--auth",))


def admin_key(platform: Platform) -> str:
    return (platform.state_dir / "admin.key").read_text().strip()


def schemathesis(
    described: str, settings: str, work: Path, *options: str, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``st run`` against the description at ``described``, every check on, with ``settings``
    (a schemathesis.toml) and, given a ``key``, its bearer header on every request."""
    path = work / "schemathesis.toml"
    path.write_text(settings)
    bearer = ["--header", f"Authorization: Bearer {key}"] if key is not None else []
    command = [
        str(Path(sys.executable).parent / "st"), "--config-file", str(path), "run", described,
        *bearer, "--workers", "1", "--no-color", "--generation-database", "none", *options,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=work)


def generated(report: str) -> int:
    """How many test cases a run's report says it generated."""
    found = re.search(r"(\d+) generated", report)
    assert found, report[-2000:]
    return int(found.group(1))
