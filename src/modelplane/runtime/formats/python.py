"""Models written as a Python class in a file: the escape hatch for custom pre- and post-processing.

The file (``source.uri``) defines a class (``runtime.pythonClass``, default ``Model``) with::

    def load(self, path: pathlib.Path, parameters: dict[str, str]) -> None   # optional
    def predict(self, inputs: dict[str, numpy.ndarray]) -> dict[str, numpy.ndarray]

and optionally ``inputs`` / ``outputs`` (lists of ``{"name", "datatype", "shape"}``) and
``batchable = True`` when every tensor's first dimension is the batch. Declared inputs are checked
on every request like any format's; without them any tensors are passed through.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Mapping
from typing import Any

import numpy as np

from modelplane.errors import ModelLoadError, PredictError
from modelplane.runtime.datatypes import DATATYPES
from modelplane.runtime.formats.base import LoadContext, Signature
from modelplane.runtime.types import Array, TensorSpec


class PythonPredictor:
    def __init__(self, context: LoadContext) -> None:
        cls = _load_class(context)
        try:
            self._model: Any = cls()
            if hasattr(self._model, "load"):
                self._model.load(context.artifact.parent, dict(context.parameters))
        except Exception as exc:  # user code may raise anything
            raise ModelLoadError(f"{cls.__name__}.load failed: {exc!r}") from exc
        if not callable(getattr(self._model, "predict", None)):
            raise ModelLoadError(f"class {cls.__name__} has no predict(self, inputs) method")
        self._signature = Signature(
            platform="python",
            inputs=_specs(getattr(cls, "inputs", ()), "inputs"),
            outputs=_specs(getattr(cls, "outputs", ()), "outputs"),
            batchable=bool(getattr(cls, "batchable", False)),
        )

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: dict[str, Array], outputs: frozenset[str]) -> dict[str, Array]:
        try:
            results = self._model.predict(inputs)
        except Exception as exc:
            raise PredictError(f"{type(self._model).__name__}.predict failed: {exc!r}") from exc
        if not isinstance(results, Mapping):
            raise PredictError(
                f"{type(self._model).__name__}.predict returned {type(results).__name__}; "
                f"it must return a dict of output name to array"
            )
        chosen = {str(k): np.asarray(v) for k, v in results.items()}
        return {k: v for k, v in chosen.items() if k in outputs} if outputs else chosen


def _load_class(context: LoadContext) -> type:
    path = context.artifact
    if path.suffix != ".py":
        raise ModelLoadError(f"format 'python' needs a .py file as source, got {path.name}")
    # A unique module name per file keeps two revisions of one model apart in one process.
    module_name = f"modelplane_user_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ModelLoadError(f"importing {path.name} failed: {exc!r}") from exc
    cls = getattr(module, context.python_class, None)
    if not isinstance(cls, type):
        raise ModelLoadError(
            f"{path.name} defines no class {context.python_class!r}; "
            f"set runtime.pythonClass to the class to serve"
        )
    return cls


def _specs(raw: Any, attribute: str) -> tuple[TensorSpec, ...]:
    try:
        specs = tuple(
            TensorSpec(
                str(item["name"]), str(item["datatype"]), tuple(int(d) for d in item["shape"])
            )
            for item in raw
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(
            f"class attribute {attribute} must be a list of {{name, datatype, shape}}: {exc!r}"
        ) from exc
    for spec in specs:
        if spec.datatype not in DATATYPES:
            raise ModelLoadError(f"{attribute}: {spec.name!r} has unknown datatype {spec.datatype}")
    return specs
