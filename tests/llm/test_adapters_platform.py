"""LoRA adapters on `modelplane up`: named through the gateway's OpenAI API, listed with their
parent, edited without a new revision or a restart, and a broken one reported on the Model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.llm.conftest import chat_variant, complete, completion_text, served_models
from tests.platform.conftest import Platform, wait_for

NAME = "lora-chat"


def with_adapters(llm_dir: Path, **files: str) -> Path:
    listed = "".join(
        f"  - name: {name}\n    source: {{uri: '{(llm_dir / file).as_uri()}'}}\n"
        for name, file in files.items()
    )
    return chat_variant(llm_dir, NAME, f"  adapters:\n{listed}")


@pytest.fixture(scope="module")
def platform(llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("lora-platform")
    running = Platform(root / "state", root / "up.log")
    try:
        applied = running.cli(
            "apply", "-f", str(with_adapters(llm_dir, pirate="tiny-chat-pirate.gguf"))
        )
        assert applied.returncode == 0, applied.stderr
        running.wait_condition(NAME, "Ready", "True", timeout=90)
        yield running
    finally:
        running.stop()


def test_an_adapter_is_a_model_name_of_the_gateway(platform: Platform) -> None:
    assert served_models(platform.gateway) == {NAME: None, "pirate": NAME}
    assert httpx.get(f"{platform.gateway}/v1/models/pirate").json()["parent"] == NAME
    base, pirate = (
        completion_text(complete(platform.gateway, NAME)),
        completion_text(complete(platform.gateway, "pirate")),
    )
    assert base != pirate
    assert complete(platform.gateway, "pirate").headers["x-modelplane-revision"] == f"{NAME}-r1"
    unknown = complete(platform.gateway, "sailor")
    assert unknown.status_code == 404
    assert "'pirate' (an adapter of 'lora-chat')" in unknown.json()["error"]["message"]
    assert platform.wait_condition(NAME, "AdaptersReady", "True")["reason"] == "AdaptersListed"


def test_an_adapter_edit_reaches_the_running_replica_and_a_bad_one_is_reported(
    platform: Platform, llm_dir: Path, tmp_path: Path
) -> None:
    (before,) = platform.replica_pids(f"{NAME}-r1")
    broken = llm_dir / "broken-adapter.gguf"
    broken.write_bytes(b"GGUF but nothing more")
    edited = with_adapters(
        llm_dir, pirate="tiny-chat-pirate.gguf", poet="tiny-chat-poet.gguf",
        broken="broken-adapter.gguf",
    )  # fmt: skip
    assert platform.cli("apply", "-f", str(edited)).returncode == 0
    wait_for(lambda: "poet" in served_models(platform.gateway), "poet routed", 30)
    wait_for(lambda: complete(platform.gateway, "poet").status_code == 200, "poet served", 30)
    assert completion_text(complete(platform.gateway, "poet")) != completion_text(
        complete(platform.gateway, "pirate")
    )

    failed = complete(platform.gateway, "broken")
    assert failed.status_code == 424
    assert "adapter 'broken' of model 'lora-chat'" in failed.json()["error"]["message"]
    assert completion_text(complete(platform.gateway, NAME))  # the base model serves on
    found = platform.wait_condition(NAME, "AdaptersReady", "False", "AdapterUnavailable")
    assert "adapter 'broken'" in found["message"]

    model = platform.model(NAME)
    assert [r["name"] for r in model["status"]["revisions"]] == [f"{NAME}-r1"]
    assert platform.replica_pids(f"{NAME}-r1") == [before]  # nothing restarted
    events = platform.cli("describe", "model", NAME).stdout
    assert "AdapterUnavailable" in events
