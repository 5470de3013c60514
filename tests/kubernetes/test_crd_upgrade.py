"""CRD upgrades: growing the schema upgrades in place and keeps every Model; a change that
would break stored Models is refused by ``modelplane install`` with the field and the reason,
and nothing is applied."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelplane.api import crd
from modelplane.backends.kubernetes.crd_upgrade import unsafe_changes
from tests.kubernetes.conftest import apply_crd, run_as_admin
from tests.kubernetes.controlplane import ControlPlane
from tests.kubernetes.operating import MODEL


def _spec(definition: dict[str, Any]) -> dict[str, Any]:
    schema = definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    found: dict[str, Any] = schema["properties"]["spec"]
    return found


def _stored(definition: dict[str, Any], *versions: str) -> dict[str, Any]:
    return {**definition, "status": {"storedVersions": list(versions or ["v1alpha1"])}}


def test_the_same_crd_and_a_grown_one_are_safe() -> None:
    current = crd()
    assert unsafe_changes(_stored(current), current) == []
    older = copy.deepcopy(current)
    del _spec(older)["properties"]["batching"]  # the new CRD adds an optional field
    assert unsafe_changes(_stored(older), current) == []
    looser = copy.deepcopy(current)
    _spec(looser)["properties"]["batching"]["properties"]["maxBatchSize"]["maximum"] = 8192
    assert unsafe_changes(_stored(current), looser) == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda s: s["properties"].pop("batching"), "spec.batching is removed"),
        (
            lambda s: s["properties"]["batching"]["properties"]["maxBatchSize"].update(maximum=64),
            "spec.batching.maxBatchSize lowers maximum from 4096 to 64",
        ),
        (lambda s: s.setdefault("required", []).append("scaling"), "spec.scaling becomes required"),
        (
            lambda s: s["properties"]["format"].update(enum=["onnx"]),
            "spec.format no longer accepts",
        ),
        (
            lambda s: s["properties"]["scaling"]["properties"]["minReplicas"].update(type="string"),
            "spec.scaling.minReplicas changes type from integer to string",
        ),
        (
            lambda s: s["properties"]["batching"]["properties"]["maxBatchSize"].update(default=16),
            "spec.batching.maxBatchSize changes default from 32 to 16",
        ),
        (
            lambda s: s["properties"]["source"]["properties"]["sha256"].pop("nullable"),
            "spec.source.sha256 drops nullable",
        ),
        (
            lambda s: s["properties"]["scaling"]["properties"]["minReplicas"].update(
                exclusiveMinimum=True
            ),
            "spec.scaling.minReplicas makes minimum 0 exclusive",
        ),
        (
            lambda s: s["properties"]["telemetry"]["properties"]["env"].pop("additionalProperties"),
            "spec.telemetry.env stops accepting map entries",
        ),
        (
            lambda s: s["properties"]["source"]["properties"]["uri"].update(format="uri"),
            "spec.source.uri changes format to 'uri'",
        ),
    ],
)
def test_changes_that_break_stored_models_are_named(change: Any, complaint: str) -> None:
    current = crd()
    new = copy.deepcopy(current)
    change(_spec(new))
    problems = unsafe_changes(_stored(current), new)
    assert any(complaint in p for p in problems), problems


def test_dropping_a_stored_version_is_refused() -> None:
    current = crd()
    older = copy.deepcopy(current)
    legacy = copy.deepcopy(older["spec"]["versions"][0])
    legacy.update(name="v1alpha0", storage=False)
    older["spec"]["versions"].append(legacy)
    problems = unsafe_changes(_stored(older, "v1alpha0", "v1alpha1"), current)
    assert any("version v1alpha0 is dropped but objects are stored in it" in p for p in problems)


# -- on the real API server ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("restored_crd")
def test_an_older_crd_upgrades_in_place_and_its_models_stay(
    control_plane: ControlPlane, installed: str
) -> None:
    older = crd()
    del _spec(older)["properties"]["batching"]
    apply_crd(control_plane, older)
    document = MODEL.format(name="from-before", extra="")
    control_plane.kubectl("apply", "-f", "-", input=document, check=True)
    refused = control_plane.kubectl(
        "apply", "-f", "-", input=document + "  batching: {maxBatchSize: 8}\n"
    )
    assert refused.returncode != 0  # the older schema has no such field

    upgraded = run_as_admin(control_plane, "install")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "CustomResourceDefinition/models.modelplane.io applied" in upgraded.stdout
    before = control_plane.get_json("mdl", "from-before")
    assert before["spec"]["source"]["uri"] == "https://models.example.com/iris.onnx"
    control_plane.kubectl(
        "apply", "-f", "-", input=document + "  batching: {maxBatchSize: 8}\n", check=True
    )
    assert control_plane.get_json("mdl", "from-before")["spec"]["batching"]["maxBatchSize"] == 8
    control_plane.kubectl("delete", "mdl", "from-before", check=True)


@pytest.mark.slow
@pytest.mark.usefixtures("restored_crd")
def test_an_unsafe_crd_change_is_refused_and_nothing_is_applied(
    control_plane: ControlPlane, installed: str
) -> None:
    # The live CRD has a field the new one lacks: applying it would prune stored values.
    live = crd()
    _spec(live)["properties"]["legacyOption"] = {"type": "string"}
    apply_crd(control_plane, live)
    refused = run_as_admin(control_plane, "install")
    assert refused.returncode != 0
    assert "spec.legacyOption is removed: stored values would be pruned" in refused.stderr
    assert "nothing was applied" in refused.stderr
    assert "Traceback" not in refused.stderr
    found = control_plane.get_json("crd", "models.modelplane.io")
    assert "legacyOption" in _spec(found)["properties"]

    forced = run_as_admin(control_plane, "install", "--allow-unsafe-crd")
    assert forced.returncode == 0, forced.stderr
    found = control_plane.get_json("crd", "models.modelplane.io")
    assert "legacyOption" not in _spec(found)["properties"]
