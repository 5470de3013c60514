"""Kill ``modelplane up`` at any moment: on restart every model is back and serving."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.platform.conftest import Platform, manifest, wait_for


def test_sigkill_and_restart_keep_state(iris_dir: Path, tmp_path: Path) -> None:
    running = Platform(tmp_path / "state", tmp_path / "up.log")
    try:
        for name in ("keep-a", "keep-b"):
            running.cli(
                "apply",
                "-f",
                str(manifest(tmp_path / f"{name}.yaml", name, iris_dir / "model.onnx")),
            )
        running.wait_condition("keep-a", "Ready", "True")
        running.wait_condition("keep-b", "Ready", "True")
        changed = manifest(
            tmp_path / "keep-b.yaml",
            "keep-b",
            iris_dir / "model.onnx",
            "  batching: {maxBatchSize: 4}\n",
        )
        running.cli("apply", "-f", str(changed))
        running.wait_condition("keep-b", "Ready", "True")
        wait_for(
            lambda: running.model("keep-b")["status"].get("stableRevision") == "keep-b-r2", "r2", 60
        )
        assert running.stop(signal.SIGKILL) == -9
        wait_for(lambda: not running.replica_pids("keep-a-r1"), "orphans gone", 10)

        running.start()
        running.wait_condition("keep-a", "Ready", "True", "RevisionReady")
        running.wait_condition("keep-b", "Ready", "True", "RevisionReady")
        b = running.model("keep-b")
        assert b["metadata"]["generation"] == 2
        assert b["status"]["stableRevision"] == "keep-b-r2"
        assert (
            running.infer("keep-b", [[5.1, 3.5, 1.4, 0.2]]).headers["x-modelplane-revision"]
            == "keep-b-r2"
        )
        listed = running.cli("get", "models")
        assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == ["keep-a", "keep-b"]
    finally:
        running.stop()


def test_restart_mid_rollout_resumes_at_the_recorded_step(iris_dir: Path, tmp_path: Path) -> None:
    slow = "{weight: 20, pauseSeconds: 600}, {weight: 60, pauseSeconds: 600}"
    canary = f"{{strategy: Canary, steps: [{slow}]}}"
    running = Platform(tmp_path / "state", tmp_path / "up.log")
    try:
        running.cli(
            "apply",
            "-f",
            str(manifest(tmp_path / "m.yaml", "mid", iris_dir / "model.onnx", rollout=canary)),
        )
        running.wait_condition("mid", "Ready", "True", "RevisionReady")
        changed = manifest(
            tmp_path / "m.yaml",
            "mid",
            iris_dir / "model.onnx",
            "  batching: {maxBatchSize: 4}\n",
            rollout=canary,
        )
        running.cli("apply", "-f", str(changed))
        wait_for(
            lambda: (
                (running.model("mid")["status"].get("rollout") or {}).get("stepStartedAt")
                is not None
            ),
            "step 1",
            60,
        )
        before = running.model("mid")["status"]
        assert running.stop(signal.SIGKILL) == -9

        running.start()
        wait_for(
            lambda: (
                {r["name"]: r["traffic"] for r in running.model("mid")["status"]["revisions"]}
                == {"mid-r1": 80, "mid-r2": 20}
            ),
            "80/20 again",
            60,
        )
        after = running.model("mid")["status"]
        assert after["rollout"]["phase"] == "Progressing"
        assert after["rollout"]["step"] == before["rollout"]["step"] == 0
        assert after["rollout"]["stepStartedAt"] == before["rollout"]["stepStartedAt"]
        history = running.cli("rollout", "history", "mid").stdout
        assert history.count("RolloutStarted") == 1
    finally:
        running.stop()
