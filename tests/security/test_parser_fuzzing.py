"""The parsers of untrusted bytes under a coverage-guided fuzzer (atheris): a bounded run of
each target in ``tests/security/fuzz_parsers.py`` finds no error other than the documented
refusal. ``scripts/fuzz-parsers`` runs the same targets for longer."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Runs per target: signing and checking an RSA token costs a millisecond, parsing far less.
RUNS = {"v2-request": 30_000, "yaml-manifest": 30_000, "jwt": 3_000}


@pytest.mark.parametrize("target", sorted(RUNS))
def test_a_bounded_fuzzing_run_finds_no_unexpected_error(target: str, tmp_path: Path) -> None:
    found = subprocess.run(
        [sys.executable, "-m", "tests.security.fuzz_parsers", target, f"-runs={RUNS[target]}",
         "-max_total_time=120", "-seed=1"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    report = found.stdout + found.stderr
    assert found.returncode == 0, report[-4000:]
    assert f"Done {RUNS[target]} runs" in report, report[-2000:]
    coverage = re.findall(r"cov: (\d+)", report)
    assert coverage, report[-2000:]
    assert int(coverage[-1]) > 10  # the fuzzer reached into the parser, not only its entry
