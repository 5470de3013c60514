"""Model objects for tests that need one without a manifest file: an ONNX classifier, named
and placed as asked, with more of its spec where a test needs it."""

from __future__ import annotations

from typing import Any

from modelplane.api import Model, parse_model


def onnx_model(name: str = "iris", namespace: str = "default", **spec: Any) -> Model:
    """``spec``: more spec fields, as the wire spells them (``scaling={"maxReplicas": 4}``)."""
    return parse_model(
        {
            "apiVersion": "modelplane.io/v1alpha1",
            "kind": "Model",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "source": {"uri": "file:///m.onnx"},
                "format": "onnx",
                "task": "classification",
                **spec,
            },
        }
    )
