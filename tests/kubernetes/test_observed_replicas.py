"""A pod as the operator sees a replica: its phase, restarts and why it failed."""

from __future__ import annotations

from typing import Any

from modelplane.api.exits import EXIT_ARTIFACT_UNAVAILABLE, EXIT_LOAD_FAILED
from modelplane.backends.kubernetes.children import LABEL_REVISION
from modelplane.backends.kubernetes.observed import replica_view
from modelplane.control.reconcile import Phase


def crashed_pod(exit_code: int, message: str) -> dict[str, Any]:
    terminated = {"exitCode": exit_code, "reason": "Error", "message": message}
    return {
        "metadata": {"name": "iris-r2-abc", "labels": {LABEL_REVISION: "iris-r2"}},
        "status": {
            "phase": "Running",
            "containerStatuses": [{"restartCount": 3, "lastState": {"terminated": terminated}}],
        },
    }


def test_a_replica_that_could_not_get_its_artifact_says_so() -> None:
    view = replica_view(crashed_pod(EXIT_ARTIFACT_UNAVAILABLE, "artifact s3://m/x not found"))
    assert (view.phase, view.restarts) == (Phase.FAILED, 3)
    assert view.reason == "artifact s3://m/x not found"
    assert view.failure == "ArtifactUnavailable"


def test_a_replica_whose_model_does_not_load_is_an_ordinary_failure() -> None:
    view = replica_view(crashed_pod(EXIT_LOAD_FAILED, "onnxruntime cannot load it"))
    assert view.phase is Phase.FAILED
    assert view.failure == ""


def test_a_fetch_step_that_could_not_get_the_artifact_says_so() -> None:
    pod = crashed_pod(EXIT_ARTIFACT_UNAVAILABLE, "error: access to s3://m/x was denied")
    status = pod["status"]
    status["initContainerStatuses"] = status.pop("containerStatuses")
    status["containerStatuses"] = [
        {"restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
    ]
    view = replica_view(pod)
    assert (view.phase, view.restarts) == (Phase.FAILED, 3)
    assert view.reason == "error: access to s3://m/x was denied"
    assert view.failure == "ArtifactUnavailable"
