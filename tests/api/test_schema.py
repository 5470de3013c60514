"""The JSON Schema and the CRD generated from the types accept and reject what the types do."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from modelplane.api import crd, json_schema

GOOD = {
    "apiVersion": "modelplane.io/v1alpha1",
    "kind": "Model",
    "metadata": {"name": "iris"},
    "spec": {
        "source": {"uri": "file://examples/iris/model.onnx", "sha256": "a" * 64},
        "format": "onnx",
        "task": "classification",
        "scaling": {"minReplicas": 0, "maxReplicas": 2},
    },
}


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found.extend(walk(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(walk(value, f"{path}/{index}"))
    return found


def crd_schema() -> dict[str, Any]:
    (version,) = crd()["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_json_schema_validates_a_good_model_and_rejects_bad_ones() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(GOOD, schema)
    bad = {**GOOD, "spec": {**GOOD["spec"], "format": "pickle"}}
    with pytest.raises(jsonschema.ValidationError, match="pickle"):
        jsonschema.validate(bad, schema)


def test_crd_schema_is_structural() -> None:
    schema = crd_schema()
    for path, node in walk(schema["properties"]["spec"]) + walk(schema["properties"]["status"]):
        if path.endswith("/properties") or any(
            part in path for part in ("/enum", "/default", "/x-kubernetes-validations")
        ):
            continue
        for forbidden in ("$ref", "$defs", "anyOf", "const", "title"):
            assert forbidden not in node, f"{path} has {forbidden}"
        if not node.get("x-kubernetes-int-or-string"):
            assert "type" in node, f"{path} has no type"
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True


def test_crd_validates_like_the_types() -> None:
    schema = crd_schema()
    validator = jsonschema.Draft4Validator(_as_draft4(schema))
    validator.validate(GOOD)
    for field, value in (("format", "pickle"), ("task", 3)):
        bad = {**GOOD, "spec": {**GOOD["spec"], field: value}}
        assert not validator.is_valid(bad)


def test_crd_shape() -> None:
    definition = crd()
    assert definition["metadata"]["name"] == "models.modelplane.io"
    spec = definition["spec"]
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["mdl"]
    (version,) = spec["versions"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:4] == ["URL", "Ready", "Reason", "Age"]


def _as_draft4(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI v3's ``nullable`` means 'or null'; Draft 4 spells that with a type list."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if isinstance(value, dict):
            out[key] = (
                _as_draft4(value)
                if key != "properties"
                else {k: _as_draft4(v) for k, v in value.items()}
            )
        else:
            out[key] = value
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    out.pop("x-kubernetes-int-or-string", None)
    return out
