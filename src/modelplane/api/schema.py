"""JSON Schema and the Kubernetes CustomResourceDefinition, both generated from the ``api`` types.

The CRD schema must be *structural* (apiextensions.k8s.io/v1): every node typed, no ``$ref``, no
``anyOf`` for nullability, ``exclusiveMinimum`` as a boolean. ``structural`` converts pydantic's
JSON Schema into that dialect so the operator installs exactly the validation the types declare.
"""

from __future__ import annotations

from typing import Any

from modelplane.api.model import GROUP, KIND, VERSION, Model

PLURAL = "models"
SHORT_NAMES = ["mdl"]

JsonSchema = dict[str, Any]
_DROPPED_KEYWORDS = frozenset({"title", "$defs", "discriminator"})


def json_schema() -> JsonSchema:
    """The Model's JSON Schema (draft 2020-12), as editors and validators use it."""
    schema = Model.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def structural(node: JsonSchema, defs: dict[str, JsonSchema]) -> JsonSchema:
    """Rewrite one pydantic schema node into a Kubernetes structural schema node."""
    if "$ref" in node:
        target = dict(defs[node["$ref"].rsplit("/", 1)[-1]])
        target.update({k: v for k, v in node.items() if k != "$ref"})
        return structural(target, defs)
    options = node.get("anyOf")
    if options is not None:
        concrete = [o for o in options if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(concrete) == 1:
            merged = structural({**concrete[0], **rest}, defs)
            if len(concrete) < len(options):
                merged["nullable"] = True
            return merged
        # Mixed scalar types: accept any, validation stays with the server-side types.
        return {**_scalar_keywords(rest), "x-kubernetes-int-or-string": True}
    out: JsonSchema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYWORDS:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            out[key.replace("exclusive", "").lower()] = value
            out[key] = True
        elif key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = structural(value, defs)
        else:
            out[key] = value
    if "properties" in out and out.get("additionalProperties") is False:
        # Kubernetes forbids both together; it prunes (or, with strict field validation,
        # rejects) unknown fields of a structural schema anyway.
        del out["additionalProperties"]
    if "type" not in out and "enum" in out:
        out["type"] = "string"
    return out


def _scalar_keywords(node: JsonSchema) -> JsonSchema:
    return {k: v for k, v in node.items() if k in ("description", "default")}


def _version_schema() -> JsonSchema:
    schema = Model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.get("$defs", {})
    properties = schema["properties"]
    return {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural(properties["spec"], defs),
            "status": structural(properties["status"], defs),
        },
    }


PRINTER_COLUMNS: list[JsonSchema] = [
    {"name": "URL", "type": "string", "jsonPath": ".status.url"},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Stable", "type": "string", "jsonPath": ".status.stableRevision", "priority": 1},
    {"name": "Canary", "type": "string", "jsonPath": ".status.canaryRevision", "priority": 1},
    {"name": "Format", "type": "string", "jsonPath": ".spec.format", "priority": 1},
]


def crd() -> JsonSchema:
    """The CustomResourceDefinition for ``models.modelplane.io``."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": SHORT_NAMES,
                "categories": ["modelplane"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": _version_schema()},
                }
            ],
        },
    }
