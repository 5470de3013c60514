"""The golden path end to end: a repository written by ``modelplane init``, pushed, and followed
by ``modelplane up``'s git source serves its model; a change merged to main rolls out as a canary
under load and is promoted (docs/golden-path.md)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.gitops.test_sync import _git, commit
from tests.platform.conftest import Platform, wait_for
from tests.platform.test_rollouts import events, wait_phase
from tests.processes import modelplane
from tests.traffic import steady_load


def _applied(platform: Platform) -> bool:
    (source,) = httpx.get(f"{platform.api}/gitops", timeout=5).json()["items"]
    return bool(source["result"] == "Applied")


@pytest.mark.slow
def test_init_push_register_merge_and_the_canary_is_promoted(
    iris_dir: Path, tmp_path: Path
) -> None:
    work, remote = tmp_path / "iris", tmp_path / "iris.git"
    source = (iris_dir / "model.onnx").as_uri()
    uploaded = tmp_path / "store" / "iris-evaluation.jsonl"  # where the team keeps its copy
    init = ("init", "iris", "--source", source, "--dir", str(work), "--dataset", uploaded.as_uri())
    written = subprocess.run(modelplane(*init), capture_output=True, text=True, timeout=60,
                             check=False)  # fmt: skip
    assert written.returncode == 0, written.stderr
    # The examples written are iris rows already; the model names its input X.
    cases = (work / "evaluation" / "iris.jsonl").read_text().replace('"input-0"', '"X"')
    (work / "evaluation" / "iris.jsonl").write_text(cases)
    uploaded.parent.mkdir()
    uploaded.write_text(cases)
    # What the repository's CI runs on a pull request.
    evaluated = subprocess.run(
        modelplane("evaluate", "-f", "models/iris.yaml", "--dataset", "evaluation/iris.jsonl"),
        cwd=work, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stdout.startswith("passed: accuracy 1 over 3 examples")
    # The team's one edit before the first push: a canary judged on this test's clock.
    model = (work / "models" / "iris.yaml").read_text()
    for default, quicker in (("pauseSeconds: 60", "pauseSeconds: 2"),
                             ("minRequests: 50", "minRequests: 20"),
                             ("maxLatencyP99Ms: 250", "maxLatencyP99Ms: 2000")):  # fmt: skip
        assert default in model
        model = model.replace(default, quicker)
    commit(work, {"models/iris.yaml": model}, "Serve iris")
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    _git(work, "push", "-q", str(remote), "main")

    options = ("--git", remote.as_uri(), "--git-branch", "main", "--git-path", "models",
               "--git-interval", "600")  # fmt: skip
    platform = Platform(tmp_path / "state", tmp_path / "up.log", options=options)
    try:
        wait_for(lambda: _applied(platform), "the first commit applied", 30)
        platform.wait_condition("iris", "Ready", "True", "RevisionReady", timeout=90)
        with steady_load(f"{platform.gateway}/v2/models/iris/infer") as outcomes:
            wait_for(lambda: sum(outcomes.values()) > 20, "traffic", 30)
            batching = "  task: classification\n  batching:\n    maxBatchSize: 8\n"
            batched = model.replace("  task: classification\n", batching)
            commit(work, {"models/iris.yaml": batched}, "Batch iris by 8")
            _git(work, "push", "-q", str(remote), "main")  # the pull request, merged
            assert httpx.post(f"{platform.api}/gitops/webhook", timeout=5).status_code == 202
            wait_phase(platform, "iris", "Promoted", 120)
        assert [k for k in outcomes if not k.startswith("200")] == []
        assert {k.split()[1] for k in outcomes} == {"iris-r1", "iris-r2"}
        status = platform.model("iris")["status"]
        assert status["stableRevision"] == "iris-r2"
        gate = status["rollout"]["evaluation"]  # judged on the team's cases before any traffic
        assert (gate["passed"], gate["value"], gate["examples"]) == (True, 1.0, 3)
        assert platform.model("iris")["spec"]["batching"]["maxBatchSize"] == 8
        history = "\n".join(events(platform, "iris"))
        assert "GitApplied" in history
        assert "RolloutPromoted" in history
    finally:
        platform.stop()
