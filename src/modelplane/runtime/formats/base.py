"""The seam between the data plane and a model format.

A format loads an artifact into a :class:`Predictor`; the data plane validates requests against
the predictor's declared inputs, batches them and calls ``predict`` from one worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from modelplane.errors import ModelLoadError
from modelplane.runtime.types import Array, TensorSpec


class Predictor(Protocol):
    """A loaded model. ``predict`` is called from a single worker thread, never concurrently."""

    @property
    def signature(self) -> Signature: ...

    def predict(self, inputs: dict[str, Array], outputs: frozenset[str]) -> dict[str, Array]:
        """Compute the named ``outputs`` (a subset of the signature's) for ``inputs``."""
        ...


@dataclass(frozen=True)
class Signature:
    """What a predictor accepts and returns.

    ``inputs`` empty means the model declares nothing and takes any tensors (python models).
    ``batchable`` means every input and output has a variable first dimension along which
    requests may be concatenated and split.
    """

    platform: str
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    batchable: bool = False


@dataclass(frozen=True)
class LoadContext:
    """Everything a format may read while loading: the fetched artifact and the spec's options."""

    artifact: Path
    parameters: dict[str, str] = field(default_factory=dict)
    python_class: str = "Model"
    cpu_threads: int = 1  # from spec.resources.cpu: how many threads a format may compute on
    task: str = ""  # what the model is served for, for formats that load differently per task
    context_length: int | None = None  # language models: tokens of context; None, the model's

    def whole_number(self, name: str, default: int) -> int:
        """``runtime.parameters[name]`` as an int, or ``default`` when it is not set."""
        return whole_number(self.parameters, name, default)


def whole_number(parameters: dict[str, str], name: str, default: int) -> int:
    """``parameters[name]`` (from ``runtime.parameters``) as an int, or ``default`` when it is
    not set."""
    given = parameters.get(name)
    if given is None:
        return default
    try:
        return int(given)
    except ValueError as exc:
        message = f"runtime.parameters.{name} must be a whole number, not {given!r}"
        raise ModelLoadError(message) from exc


# The tensors of an embedding model, the same over v2 and behind the OpenAI API.
TEXT_INPUT, EMBEDDING_OUTPUT, TOKEN_COUNT_OUTPUT = "text", "embedding", "token_count"


def text_embedding_signature(platform: str, width: int) -> Signature:
    """An embedding model's: texts in (``text``, BYTES), unit vectors and token counts out."""
    return Signature(
        platform=platform,
        inputs=(TensorSpec(TEXT_INPUT, "BYTES", (-1,)),),
        outputs=(
            TensorSpec(EMBEDDING_OUTPUT, "FP32", (-1, width)),
            TensorSpec(TOKEN_COUNT_OUTPUT, "INT64", (-1,)),
        ),
        batchable=True,
    )


def texts(array: Array) -> list[str]:
    """The strings of a BYTES tensor."""
    return [
        item.decode("utf-8", errors="replace") if isinstance(item, bytes) else str(item)
        for item in array.reshape(-1)
    ]
