"""What the supervisor reads in a replica's log: its last words, the reason it stopped, even
when requests that finished after the failure wrote access lines below them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

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
