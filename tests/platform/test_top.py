"""`modelplane top` against a running `modelplane up` with traffic: each revision's row shows
its traffic share, replicas, requests per second, errors and latency."""

from __future__ import annotations

from pathlib import Path

from tests.platform.conftest import Platform, manifest
from tests.traffic import steady_load


def test_top_shows_live_traffic_per_revision(
    platform: Platform, iris_dir: Path, tmp_path: Path
) -> None:
    path = manifest(tmp_path / "m.yaml", "watched", iris_dir / "model.onnx")
    assert platform.cli("apply", "-f", str(path)).returncode == 0
    platform.wait_condition("watched", "Ready", "True", "RevisionReady")
    with steady_load(f"{platform.gateway}/v2/models/watched/infer") as outcomes:
        shown = platform.cli("top", "--once", "--interval", "2")
    assert shown.returncode == 0, shown.stderr
    assert set(outcomes) == {"200 watched-r1"}
    header, *rows = [line.split() for line in shown.stdout.splitlines() if line.strip()]
    assert header == ["MODEL", "REVISION", "TRAFFIC", "REPLICAS", "REQ/S", "ERRORS", "P50", "P99",
                      "IN-FLIGHT"]  # fmt: skip
    (row,) = [r for r in rows if r[0] == "default/watched"]
    assert row[1:4] == ["watched-r1", "100%", "1/1"]
    assert float(row[4]) > 10  # three clients back to back: tens to hundreds per second
    assert row[5] == "0.0%"
    assert row[6].endswith("ms")
    assert float(row[7].removesuffix("ms")) >= float(row[6].removesuffix("ms"))


def test_top_says_when_the_gateway_cannot_be_read(platform: Platform) -> None:
    shown = platform.cli("top", "--once", "--gateway", "http://127.0.0.1:9")
    assert shown.returncode != 0
    assert "cannot read the gateway's metrics at http://127.0.0.1:9/metrics" in shown.stderr
    assert "Traceback" not in shown.stderr
