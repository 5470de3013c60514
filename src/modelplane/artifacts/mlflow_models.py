"""Which file of an MLflow model directory a format loader opens.

An MLflow model is a directory whose ``MLmodel`` file (YAML) lists the flavours it was saved in,
each naming its own data: the ONNX graph, the pickled scikit-learn estimator, the transformers
model directory. ``models:/`` sources (``mlflow.py``) fetch the whole directory; the runtime's
``loading.py`` asks here for the path the Model's ``spec.format`` loads, so the format a user
declares must be one of the flavours the model has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from modelplane.api import ModelFormat
from modelplane.artifacts.paths import safe_relative
from modelplane.errors import ModelLoadError

MLMODEL = "MLmodel"
# The flavour each servable format reads; the others (python_function, pytorch, ...) name code
# or libraries the runtime does not run.
FLAVOURS: dict[ModelFormat, str] = {
    ModelFormat.ONNX: "onnx",
    ModelFormat.SKLEARN: "sklearn",
    ModelFormat.HUGGINGFACE: "transformers",
}
# What joblib.load reads: both are pickle streams (cloudpickle's of a fitted estimator names
# its classes by reference, as pickle's does).
SKLEARN_SERIALIZATIONS = frozenset({"pickle", "cloudpickle"})
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def is_mlflow_model(path: Path) -> bool:
    return path.is_dir() and (path / MLMODEL).is_file()


def mlflow_model_file(directory: Path, fmt: ModelFormat, origin: str = "") -> Path:
    """The path in the MLflow model ``directory`` that the loader of ``fmt`` opens; refused, naming
    the model's flavours, when it has none that ``fmt`` reads. ``origin`` (the source URI) names
    the model in messages."""
    flavours = _flavours(directory)
    wanted = FLAVOURS.get(fmt)
    if wanted is None or wanted not in flavours:
        raise ModelLoadError(_mismatch(origin or str(directory), fmt, sorted(flavours)))
    settings = flavours[wanted]
    if not isinstance(settings, Mapping):
        raise ModelLoadError(f"{directory / MLMODEL}: flavors.{wanted} is not a mapping")
    return _DATA[wanted](directory, settings)


def _flavours(directory: Path) -> dict[str, Any]:
    path = directory / MLMODEL
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"cannot read the MLflow model's {path}: {exc}") from exc
    flavours = document.get("flavors") if isinstance(document, dict) else None
    if not isinstance(flavours, dict) or not flavours:
        raise ModelLoadError(f"{path} lists no flavors; it is not an MLflow model file")
    return {str(name): value for name, value in flavours.items()}


def _mismatch(model: str, fmt: ModelFormat, flavours: list[str]) -> str:
    served = sorted(set(flavours) & set(FLAVOURS.values()))
    formats = ", ".join(f"{f.value} ({flavour} flavour)" for f, flavour in FLAVOURS.items())
    if not served:
        return (
            f"the MLflow model {model} has only the flavours {', '.join(flavours)}, "
            f"none of which modelplane serves; log the model in one of: {formats}"
        )
    matching = [f.value for f, flavour in FLAVOURS.items() if flavour in served]
    return (
        f"spec.format is {fmt.value!r}, but the MLflow model {model} has the "
        f"flavours {', '.join(flavours)}; set spec.format to {' or '.join(matching)} "
        f"(modelplane serves {formats})"
    )


def _inside(directory: Path, settings: Mapping[str, Any], key: str, flavour: str) -> Path:
    """The path the flavour's ``key`` names, refused if it leaves the directory or is missing."""
    name = settings.get(key)
    where = f"{directory / MLMODEL}: flavors.{flavour}.{key}"
    if not isinstance(name, str):
        raise ModelLoadError(f"{where} is missing; the model was not saved with its data")
    path = directory / safe_relative(name, str(directory / MLMODEL))
    if not path.exists():
        raise ModelLoadError(f"{where} names {name}, which the model directory does not hold")
    return path


def _onnx(directory: Path, settings: Mapping[str, Any]) -> Path:
    return _inside(directory, settings, "data", "onnx")


def _sklearn(directory: Path, settings: Mapping[str, Any]) -> Path:
    serialization = settings.get("serialization_format", "cloudpickle")
    if serialization not in SKLEARN_SERIALIZATIONS:
        raise ModelLoadError(
            f"{directory / MLMODEL}: the sklearn model is serialized as {serialization!r}, "
            f"which joblib cannot load; log it with serialization_format='cloudpickle' or "
            f"'pickle'"
        )
    return _inside(directory, settings, "pickled_model", "sklearn")


def _transformers(directory: Path, settings: Mapping[str, Any]) -> Path:
    if "model_binary" not in settings:
        raise ModelLoadError(
            f"{directory / MLMODEL}: the transformers model was logged without its weights "
            f"(save_pretrained=False); log it with save_pretrained=True to serve it"
        )
    model = _inside(directory, settings, "model_binary", "transformers")
    if not any((model / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelLoadError(
            f"{directory / MLMODEL}: the transformers model's directory {model.name} has no "
            f"tokenizer beside its weights, where the huggingface format loads it from; save "
            f"the tokenizer into the model directory before logging it"
        )
    return model


_DATA: dict[str, Callable[[Path, Mapping[str, Any]], Path]] = {
    "onnx": _onnx,
    "sklearn": _sklearn,
    "transformers": _transformers,
}
