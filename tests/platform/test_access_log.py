"""Access lines of ``modelplane up``: the gateway's in its own log and each replica's in the
replica's log, the two joined by the request's trace; ``--no-access-log`` writes none."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.platform.conftest import Platform, manifest
from tests.processes import access_lines

TRACE_ID, PARENT_ID = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
BODY = {
    "inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}


def _serve_once(tmp_path: Path, iris_dir: Path, *options: str) -> tuple[str, str]:
    """Start ``up`` with ``options``, serve iris one traced request, stop; the logs of ``up``
    and of the replica, complete since both have exited."""
    platform = Platform(tmp_path / "state", tmp_path / "up.log", options=options)
    try:
        platform.cli(
            "apply", "-f", str(manifest(tmp_path / "m.yaml", "iris", iris_dir / "model.onnx"))
        )
        platform.wait_condition("iris", "Ready", "True", "RevisionReady")
        headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
        url = f"{platform.gateway}/v2/models/iris/infer"
        assert httpx.post(url, json=BODY, headers=headers, timeout=30).status_code == 200
    finally:
        assert platform.stop() == 0
    (replica_log,) = (platform.state_dir / "logs").glob("default.iris-r1-*.log")
    return platform.log.read_text(), replica_log.read_text()


def test_the_gateway_and_the_replica_each_write_the_requests_line(
    tmp_path: Path, iris_dir: Path
) -> None:
    up_log, replica_log = _serve_once(tmp_path, iris_dir, "--log-format", "json")
    (gateway,) = access_lines(up_log)
    (replica,) = access_lines(replica_log)
    for line in (gateway, replica):
        assert line["route"] == "/v2/models/{model}/infer"
        assert (line["method"], line["status"]) == ("POST", 200)
        assert (line["model"], line["revision"]) == ("default/iris", "iris-r1")
        assert line["trace_id"] == TRACE_ID  # tracing is off: the caller's trace, passed on
    assert gateway["bytes"] == replica["bytes"] > 0
    assert gateway["duration_ms"] >= replica["duration_ms"]


def test_no_access_log_writes_none_at_the_gateway_or_the_replicas(
    tmp_path: Path, iris_dir: Path
) -> None:
    up_log, replica_log = _serve_once(tmp_path, iris_dir, "--no-access-log")
    assert "modelplane.access" not in up_log
    assert "modelplane.access" not in replica_log
