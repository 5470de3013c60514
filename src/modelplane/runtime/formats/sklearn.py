"""scikit-learn estimators saved with joblib.

joblib files are pickles: loading one runs code. The loader (``loading.py``) only gets here when the
spec pins the artifact's sha256 and sets ``runtime.allowPickle``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelplane.errors import MissingExtraError, ModelLoadError, PredictError
from modelplane.runtime.datatypes import datatype_of
from modelplane.runtime.formats.base import LoadContext, Signature
from modelplane.runtime.types import Array, TensorSpec

INPUT = "input-0"


class SklearnPredictor:
    def __init__(self, context: LoadContext) -> None:
        try:
            import joblib
        except ImportError as exc:
            raise MissingExtraError("format 'sklearn'", "sklearn") from exc
        try:
            self._estimator: Any = joblib.load(context.artifact)
        except Exception as exc:  # unpickling raises anything the pickle chooses to
            raise ModelLoadError(f"joblib cannot load {context.artifact.name}: {exc}") from exc
        if not hasattr(self._estimator, "predict"):
            raise ModelLoadError(
                f"{context.artifact.name} holds a {type(self._estimator).__name__}, "
                f"which has no predict()"
            )
        self._signature = Signature("sklearn", (self._input_spec(),), self._output_specs(), True)

    def _input_spec(self) -> TensorSpec:
        features = int(getattr(self._estimator, "n_features_in_", -1))
        return TensorSpec(INPUT, "FP64", (-1, features))

    def _output_specs(self) -> tuple[TensorSpec, ...]:
        classes = getattr(self._estimator, "classes_", None)
        label_type = datatype_of(np.asarray(classes)) if classes is not None else "FP64"
        specs = [TensorSpec("predict", label_type, (-1,))]
        if hasattr(self._estimator, "predict_proba"):
            width = len(classes) if classes is not None else -1
            specs.append(TensorSpec("predict_proba", "FP64", (-1, width)))
        return tuple(specs)

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: dict[str, Array], outputs: frozenset[str]) -> dict[str, Array]:
        features = inputs[INPUT]
        try:
            results: dict[str, Array] = {}
            if "predict" in outputs:
                results["predict"] = np.asarray(self._estimator.predict(features))
            if "predict_proba" in outputs:
                results["predict_proba"] = np.asarray(self._estimator.predict_proba(features))
        except Exception as exc:
            raise PredictError(f"{type(self._estimator).__name__} failed: {exc}") from exc
        return results
