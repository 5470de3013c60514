"""A Model whose format needs an extra this installation lacks: reported once, never restarted,
while the platform's other Models serve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import without_joblib
from tests.platform.conftest import API, Platform, running_in

SETOSA = [5.1, 3.5, 1.4, 0.2]
PIP = "pip install 'modelplane[sklearn]'"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    env = without_joblib(tmp_path_factory.mktemp("shadow"))
    yield from running_in(tmp_path_factory, "no-sklearn", env=env)


def test_a_missing_extra_stalls_the_model_once_and_others_keep_serving(
    platform: Platform, iris_dir: Path
) -> None:
    applied = platform.cli("apply", "-f", str(iris_dir / "iris-sklearn.yaml"))
    assert applied.returncode == 0, applied.stderr
    stalled = platform.wait_condition("iris-sklearn", "Stalled", "True", "MissingExtra")
    assert stalled["message"].startswith("revision iris-sklearn-r1 cannot start")
    assert PIP in stalled["message"]
    ready = platform.condition("iris-sklearn", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RevisionFailed")

    # A crashed replica is restarted 0.5 s after it exits; another Model starting, loading and
    # serving takes longer than that, with the controller reconciling all along.
    platform.cli("apply", "-f", str(iris_dir / "iris.yaml"))
    platform.wait_condition("iris", "Ready", "True", "RevisionReady")
    assert platform.infer("iris", [SETOSA]).status_code == 200

    assert platform.replica_pids("iris-sklearn-r1") == []
    (log,) = (platform.state_dir / "logs").glob("default.iris-sklearn-r1-*.log")
    assert log.read_text().count(PIP) == 1  # one start: a restart would have written it again
    assert platform.condition("iris-sklearn", "Stalled") == stalled
    events = httpx.get(f"{platform.api}{API}/namespaces/default/models/iris-sklearn/events")
    assert [e["reason"] for e in events.json()["items"]].count("MissingExtra") == 1
