"""Models stored under an earlier release's CRD stay readable, valid and served after an
upgrade, and what a rollback of the CRD does to today's Models.

``baseline/crd-6ae6d11.yaml`` is the CRD an earlier release shipped, frozen. The fast test walks
it against today's schema with the rules ``modelplane install`` applies to a live CRD, so a
change that would break stored Models fails here before it ships. The slow ones store that
release's Models (``baseline/models-6ae6d11.yaml``, from its docs) on a real API server,
upgrade as the docs say, and check what comes back and what the operator makes of it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelplane.api import crd
from modelplane.backends.kubernetes.crd_upgrade import unsafe_changes
from tests.kubernetes.conftest import ROOT, apply_crd, condition, run_as_admin
from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.kubernetes.operating import RunningOperator

BASELINE = Path(__file__).parent / "baseline"
NAMESPACE = "legacy"
GROUP = "modelplane.io"


def baseline_crd() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((BASELINE / "crd-6ae6d11.yaml").read_text())
    return found


def baseline_models() -> list[dict[str, Any]]:
    text = (BASELINE / "models-6ae6d11.yaml").read_text()
    return [document for document in yaml.safe_load_all(text) if document]


def _stored_in(definition: dict[str, Any], *versions: str) -> dict[str, Any]:
    return {**definition, "status": {"storedVersions": list(versions or ["v1alpha1"])}}


def _shipped() -> dict[str, dict[str, Any]]:
    """Today's CRD as generated and as each install path ships it."""
    helm = ROOT / "deploy/helm/modelplane/crds/models.modelplane.io.yaml"
    return {
        "modelplane crd": crd(),
        "deploy/kustomize": yaml.safe_load((ROOT / "deploy/kustomize/crd.yaml").read_text()),
        "helm": yaml.safe_load(helm.read_text()),
    }


@pytest.mark.parametrize("path", list(_shipped()))
def test_todays_crd_accepts_all_the_baseline_accepted(path: str) -> None:
    assert unsafe_changes(_stored_in(baseline_crd()), _shipped()[path]) == []


def test_the_baseline_check_names_a_field_todays_crd_lost() -> None:
    """The same walk fails, naming the path, when today's schema loses what the baseline had."""
    today = crd()
    spec = today["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec["properties"]["slo"]["properties"]["freeze"]
    spec["properties"]["rollout"]["properties"]["evaluation"]["properties"]["metric"][
        "enum"
    ].remove("scorer")
    problems = unsafe_changes(_stored_in(baseline_crd()), today)
    assert problems == [
        "v1alpha1: spec.rollout.evaluation.metric no longer accepts ['scorer']",
        "v1alpha1: spec.slo.freeze is removed: stored values would be pruned",
    ]


def test_the_baseline_models_were_valid_under_the_baseline() -> None:
    """The frozen Models use fields the baseline CRD has (its schema refuses unknown ones)."""
    spec = baseline_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    for document in baseline_models():
        for path, _ in _leaves(document["spec"], "spec"):
            _schema_at(spec, path)  # raises KeyError naming a field the baseline lacks


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every scalar (and empty container) of a document with its dotted path."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def _schema_at(properties: dict[str, Any], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"properties": properties}
    for part in path.replace("[", ".[").split("."):
        if part.startswith("["):
            schema = schema["items"]
        elif "properties" in schema:
            schema = schema["properties"][part]
        else:
            schema = schema["additionalProperties"]
    return schema


# -- on the real API server ------------------------------------------------------------------


def _served(plane: ControlPlane, document: dict[str, Any]) -> bool:
    """Whether the API server's Model schema, right now, accepts ``document`` (a server dry
    run with strict field validation: unknown fields are refused, not pruned)."""
    metadata = {"name": "probe", "namespace": document["metadata"]["namespace"]}
    probe = {**copy.deepcopy(document), "metadata": metadata}
    probe.pop("status", None)
    result = plane.kubectl(
        "create", "--dry-run=server", "--validate=strict", "-f", "-", input=json.dumps(probe)
    )
    return result.returncode == 0


def _model(plane: ControlPlane, name: str, version: str = "v1alpha1") -> dict[str, Any]:
    found: dict[str, Any] = plane.get_json(f"models.{version}.{GROUP}", name, "-n", NAMESPACE)
    return found


def _etcd(plane: ControlPlane, name: str) -> dict[str, Any]:
    found: dict[str, Any] = plane.stored(f"/registry/{GROUP}/models/{NAMESPACE}/{name}")
    return found


@pytest.fixture
def legacy(control_plane: ControlPlane, restored_crd: None) -> Iterator[str]:
    """A namespace for this module's Models, gone afterwards (before the CRD is restored)."""
    control_plane.kubectl("create", "namespace", NAMESPACE, check=True)
    yield NAMESPACE
    control_plane.kubectl("delete", "namespace", NAMESPACE, "--wait=true", timeout=120)


@pytest.mark.slow
@pytest.mark.timeout(420, func_only=True)
def test_models_stored_under_the_baseline_crd_are_kept_valid_and_served_after_the_upgrade(
    control_plane: ControlPlane,
    installed: str,
    legacy: str,
    operator_kubeconfig: Path,
    kwok_node: str,
    tmp_path: Path,
) -> None:
    newer = _todays_model()
    _serve(control_plane, baseline_crd(), newer, accepted=False)
    documents = baseline_models()
    for document in documents:
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(document), check=True)
    before = {
        d["metadata"]["name"]: _model(control_plane, d["metadata"]["name"]) for d in documents
    }

    upgraded = run_as_admin(control_plane, "install")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "CustomResourceDefinition/models.modelplane.io applied" in upgraded.stdout
    wait_until(lambda: _served(control_plane, newer), "today's CRD served")

    for name, old in before.items():
        now = _model(control_plane, name)
        assert _lost(old, now) == {}, f"{name}: what the old release stored reads back changed"
        assert now["metadata"].get("labels") == old["metadata"].get("labels")
        # Fully valid under today's schema, not only let through by validation ratcheting.
        assert _served(control_plane, old), f"{name} is refused by today's CRD"

    # What users and tools do next: apply the same file again, label.
    for document in documents:
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(document), check=True)
    control_plane.kubectl("label", "mdl", "--all", "-n", legacy, "upgraded=yes", check=True)

    operator = RunningOperator(operator_kubeconfig, tmp_path / "operator.log")
    try:
        for name in before:
            wait_until(
                lambda name=name: condition(_model(control_plane, name), "Ready") == "True",
                f"{name} Ready after the upgrade",
                180,
            )
            assert control_plane.get_json("deployment", f"{name}-r1", "-n", legacy)
    finally:
        operator.stop()
    for name, old in before.items():
        assert _lost(old, _model(control_plane, name)) == {}, f"{name} after reconciling"


def _lost(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The spec's values ``old`` had that ``new`` lacks or holds otherwise (new fields, and
    the defaults they read with, are fine)."""
    kept = dict(_leaves(new["spec"], "spec"))
    return {p: v for p, v in _leaves(old["spec"], "spec") if kept.get(p, _LOST) != v}


_LOST = object()


def _todays_model() -> dict[str, Any]:
    """The baseline's chat Model with every field today's CRD added since."""
    document = copy.deepcopy(baseline_models()[2])
    document["metadata"]["name"] = "today"
    document["spec"].update(
        scaling={"metric": "waiting", "target": 2},
        runtime={"maxLoadedAdapters": 2},
        adapters=[{"name": "pirate", "source": {"uri": "https://models.example.com/pirate.gguf"}}],
    )
    return document


NEW_FIELDS = ("scaling.metric", "scaling.target", "runtime.maxLoadedAdapters", "adapters")


def _new_fields(spec: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in NEW_FIELDS:
        value: Any = spec
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            found[path] = value
    return found


@pytest.mark.slow
def test_a_rolled_back_crd_hides_todays_fields_and_the_next_write_drops_them(
    control_plane: ControlPlane, installed: str, legacy: str
) -> None:
    """What a rollback does, recorded rather than promised: docs/kubernetes.md tells it."""
    document = _todays_model()
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(document), check=True)
    written = _new_fields(document["spec"])
    assert _new_fields(_model(control_plane, "today")["spec"]) == written

    _serve(control_plane, baseline_crd(), document, accepted=False)
    # Pruned from what is read, still in etcd: rolling forward again, nothing is lost.
    assert _new_fields(_model(control_plane, "today")["spec"]) == {}
    assert _new_fields(_etcd(control_plane, "today")["spec"]) == written
    _serve(control_plane, crd(), document, accepted=True)
    assert _new_fields(_model(control_plane, "today")["spec"]) == written

    # Any write under the older CRD (here the status write its operator makes) stores the
    # pruned object: rolled forward, the Model reads with today's defaults instead.
    _serve(control_plane, baseline_crd(), document, accepted=False)
    status = {"status": {"observedGeneration": 1}}
    control_plane.kubectl(
        "patch", "mdl", "today", "-n", legacy, "--subresource=status", "--type=merge",
        "-p", json.dumps(status), check=True,
    )  # fmt: skip
    assert _new_fields(_etcd(control_plane, "today")["spec"]) == {}
    _serve(control_plane, crd(), document, accepted=True)
    after = _new_fields(_model(control_plane, "today")["spec"])
    assert after == {"scaling.metric": "inFlight", "runtime.maxLoadedAdapters": 4}


def _serve(
    plane: ControlPlane, definition: dict[str, Any], probe: dict[str, Any], *, accepted: bool
) -> None:
    """Apply a Model CRD and wait until the API server validates with it: ``probe`` (a Model
    with today's fields) is then accepted, or refused."""
    apply_crd(plane, definition)
    wait_until(lambda: _served(plane, probe) == accepted, "the applied CRD served")


# -- a second version, as docs/kubernetes.md's conversion strategy plans it -----------------


def _two_versions(storage: str) -> dict[str, Any]:
    """Today's CRD serving v1beta1 beside v1alpha1 with the same schema, so the API server
    converts between them by the apiVersion alone (``conversion: None``)."""
    definition = crd()
    alpha = definition["spec"]["versions"][0]
    beta = {**copy.deepcopy(alpha), "name": "v1beta1"}
    alpha["storage"], beta["storage"] = storage == "v1alpha1", storage == "v1beta1"
    definition["spec"]["versions"].append(beta)
    definition["spec"]["conversion"] = {"strategy": "None"}
    return definition


def _stored_versions(plane: ControlPlane) -> list[str]:
    found: list[str] = plane.get_json("crd", f"models.{GROUP}")["status"]["storedVersions"]
    return found


def _migrate_storage(plane: ControlPlane, to: str, names: list[str]) -> None:
    """The documented steps: make ``to`` the storage version, rewrite every Model unchanged
    (the API server stores each in ``to``), then drop the other from storedVersions."""
    apply_crd(plane, _two_versions(to))

    def rewritten() -> bool:
        listed = plane.kubectl("get", f"models.{to}.{GROUP}", "-A", "-o", "json", check=True)
        plane.kubectl("replace", "-f", "-", input=listed.stdout, check=True)
        return all(_etcd(plane, name)["apiVersion"] == f"{GROUP}/{to}" for name in names)

    wait_until(rewritten, f"every Model stored as {to}")
    status = {"status": {"storedVersions": [to]}}
    plane.kubectl(
        "patch", "crd", f"models.{GROUP}", "--subresource=status", "--type=merge",
        "-p", json.dumps(status), check=True,
    )  # fmt: skip


@pytest.mark.slow
def test_a_second_version_with_the_same_schema_is_served_without_conversion_and_migrated(
    control_plane: ControlPlane, installed: str, legacy: str
) -> None:
    apply_crd(control_plane, _two_versions("v1alpha1"))
    wait_until(
        lambda: (
            control_plane.kubectl("get", f"models.v1beta1.{GROUP}", "-n", legacy).returncode == 0
        ),
        "v1beta1 served",
    )
    written = {}
    for name, version in (("via-beta", "v1beta1"), ("via-alpha", "v1alpha1")):
        document = {**copy.deepcopy(baseline_models()[0]), "apiVersion": f"{GROUP}/{version}"}
        document["metadata"]["name"] = name
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(document), check=True)
        written[name] = _model(control_plane, name, version)["spec"]
    for name, other in (("via-beta", "v1alpha1"), ("via-alpha", "v1beta1")):
        read = _model(control_plane, name, other)
        assert read["apiVersion"] == f"{GROUP}/{other}"
        assert read["spec"] == written[name]
        assert _etcd(control_plane, name)["apiVersion"] == f"{GROUP}/v1alpha1"  # the storage
    assert _stored_versions(control_plane) == ["v1alpha1"]

    _migrate_storage(control_plane, "v1beta1", list(written))
    assert _stored_versions(control_plane) == ["v1beta1"]
    assert all(_model(control_plane, n, "v1alpha1")["spec"] == s for n, s in written.items())
    # modelplane install would now refuse today's CRD, which lacks v1beta1: say why.
    live = control_plane.get_json("crd", f"models.{GROUP}")
    assert unsafe_changes(live, crd()) == [
        "version v1beta1 is dropped but objects are stored in it (status.storedVersions): "
        "migrate them first"
    ]
    # Back to one version: storage first, then stop serving v1beta1, then drop it.
    _migrate_storage(control_plane, "v1alpha1", list(written))
    live = control_plane.get_json("crd", f"models.{GROUP}")
    assert unsafe_changes(live, crd()) == [
        "version v1beta1 is dropped while served: its clients would break"
    ]
    unserved = _two_versions("v1alpha1")
    unserved["spec"]["versions"][1]["served"] = False
    apply_crd(control_plane, unserved)
    assert unsafe_changes(control_plane.get_json("crd", f"models.{GROUP}"), crd()) == []
