"""From a ``ModelSpec`` to a loaded :class:`Predictor`: fetch, apply the pickle policy, load."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from modelplane.api import GENERATIVE_TASKS, ModelFormat, ModelSpec, Source
from modelplane.artifacts.mlflow_models import is_mlflow_model, mlflow_model_file
from modelplane.errors import ModelLoadError
from modelplane.runtime.formats.base import LoadContext, Predictor
from modelplane.runtime.generation import BatchGenerator, OneAtATime

# Formats whose artifacts are pickles: loading them executes code chosen by whoever wrote them.
PICKLE_FORMATS = frozenset({ModelFormat.SKLEARN})


def _onnx(context: LoadContext) -> Predictor:
    from modelplane.runtime.formats.onnx import OnnxPredictor

    return OnnxPredictor(context)


def _sklearn(context: LoadContext) -> Predictor:
    from modelplane.runtime.formats.sklearn import SklearnPredictor

    return SklearnPredictor(context)


def _python(context: LoadContext) -> Predictor:
    from modelplane.runtime.formats.python import PythonPredictor

    return PythonPredictor(context)


def _llamacpp(context: LoadContext) -> Predictor | BatchGenerator:
    if context.task in GENERATIVE_TASKS:
        from modelplane.runtime.formats.llamacpp_slots import LlamaSlots

        return LlamaSlots(context)
    from modelplane.runtime.formats.llamacpp import LlamaEmbedder

    return LlamaEmbedder(context)


def _huggingface(context: LoadContext) -> Predictor | BatchGenerator:
    from modelplane.runtime.formats.huggingface import HuggingFaceEmbedder, HuggingFaceGenerator

    if context.task in GENERATIVE_TASKS:
        return OneAtATime(HuggingFaceGenerator(context))
    return HuggingFaceEmbedder(context)


LOADERS: dict[ModelFormat, Callable[[LoadContext], Predictor | BatchGenerator]] = {
    ModelFormat.ONNX: _onnx,
    ModelFormat.SKLEARN: _sklearn,
    ModelFormat.PYTHON: _python,
    ModelFormat.LLAMACPP: _llamacpp,
    ModelFormat.HUGGINGFACE: _huggingface,
}


def check_pickle_policy(spec: ModelSpec) -> None:
    """Refuse pickle-based formats unless the artifact is pinned and pickle explicitly allowed."""
    if spec.format not in PICKLE_FORMATS:
        return
    if spec.source.sha256 is None or not spec.runtime.allow_pickle:
        raise ModelLoadError(
            f"format {spec.format.value!r} loads a pickle, which runs code from the artifact; "
            f"refusing to load it. Convert the model to ONNX (recommended), or pin the artifact "
            f"with source.sha256 and set runtime.allowPickle: true"
        )


def cpu_threads(cpu: str) -> int:
    """Whole CPUs in a Kubernetes CPU quantity ("500m" → 1, "2" → 2, "2.5" → 3)."""
    cores = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    return max(1, math.ceil(cores))


def load(spec: ModelSpec, fetch: Callable[[Source], Path]) -> Predictor | BatchGenerator:
    """A chat or text-generation model loads as a :class:`BatchGenerator`, others as a
    :class:`Predictor`; ``fetch`` gives the artifact's verified local path (after the pickle
    policy, so a refused pickle is never downloaded)."""
    loader = LOADERS.get(spec.format)
    if loader is None:
        supported = ", ".join(sorted(f.value for f in LOADERS))
        raise ModelLoadError(
            f"format {spec.format.value!r} is not served by this runtime; supported: {supported}"
        )
    check_pickle_policy(spec)
    path = fetch(spec.source)
    # An MLflow model directory: the loader opens its flavour's file (a python class gets it all).
    if spec.format is not ModelFormat.PYTHON and is_mlflow_model(path):
        path = mlflow_model_file(path, spec.format, spec.source.uri)
    context = LoadContext(
        artifact=path,
        parameters=dict(spec.runtime.parameters),
        python_class=spec.runtime.python_class,
        cpu_threads=cpu_threads(spec.resources.cpu),
        task=spec.task.value,
        context_length=spec.generation.context_length,
    )
    return loader(context)
