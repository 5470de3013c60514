"""What the supervisor reads in a replica's log: its last words, the reason it stopped, even
when requests that finished after the failure wrote access lines below them. And which logs are
a Model's: its own namespace's replicas of its own revisions, nothing of a namesake's."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from modelplane.backends.local.replica_logs import model_logs, replica_log
from modelplane.backends.local.supervisor import last_words
from modelplane.telemetry import access
from modelplane.telemetry.logs import JsonFormatter, TextFormatter


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_last_words_pass_over_access_lines(tmp_path: Path, formatter: logging.Formatter) -> None:
    log = tmp_path / "replica.log"
    handler = logging.FileHandler(log)
    handler.setFormatter(formatter)
    failure = logging.makeLogRecord(
        {"name": "modelplane.runtime.server", "levelname": "ERROR",
         "msg": "model chat failed to load: the engine exited with code 1"}
    )  # fmt: skip
    late = logging.makeLogRecord(
        {"name": access.LOGGER, "levelname": "INFO", "msg": "POST /v1/chat/completions 502",
         "fields": {"status": 502, "model": "default/chat"}}
    )  # fmt: skip
    for record in (failure, late):
        handler.emit(record)
    handler.close()
    assert "modelplane.access" in log.read_text()
    assert last_words(log).endswith("model chat failed to load: the engine exited with code 1")


def test_a_models_logs_are_its_own_namespaces_replicas_of_its_revisions(tmp_path: Path) -> None:
    written = [
        ("team-a", "iris-r1-1"), ("team-b", "iris-r1-2"), ("team-a", "iris-r2-10"),
        ("team-a", "iris-r1-r1-3"),  # Model iris-r1's first revision
        ("team-a", "iris-r10-4"),
    ]  # fmt: skip
    for namespace, replica in written:
        replica_log(tmp_path, namespace, replica).write_text(f"{namespace} {replica}\n")
    (tmp_path / "prometheus.log").write_text("not a replica's\n")
    found = model_logs(tmp_path, "team-a", ["iris-r1", "iris-r2"])
    assert [replica for replica, _ in found] == ["iris-r1-1", "iris-r2-10"]
    assert [path.read_text() for _, path in found] == ["team-a iris-r1-1\n", "team-a iris-r2-10\n"]
    assert [r for r, _ in model_logs(tmp_path, "team-b", ["iris-r1"])] == ["iris-r1-2"]
    assert model_logs(tmp_path, "prometheus", ["iris-r1"]) == []
