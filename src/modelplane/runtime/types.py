"""Transport-neutral values of the data plane: tensors, requests and responses.

Protocol adapters (``v2``, ``openai``) decode into these and encode from them; the data plane,
the batcher and the model formats never see a web framework object or wire JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy.typing as npt

Array = npt.NDArray[Any]
Parameters = dict[str, Any]


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as metadata describes it; ``-1`` marks a variable dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass
class Tensor:
    name: str
    datatype: str
    data: Array
    parameters: Parameters = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.data.shape)


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool | None = None  # None: follow the request's default
    parameters: Parameters = field(default_factory=dict)


@dataclass
class InferenceRequest:
    inputs: list[Tensor]
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)
    outputs: list[RequestedOutput] | None = None  # None: every output the model declares

    def arrays(self) -> dict[str, Array]:
        return {t.name: t.data for t in self.inputs}


@dataclass
class InferenceResponse:
    model_name: str
    model_version: str
    outputs: list[Tensor]
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def rows(array: Array) -> int:
    """Size of the batch dimension (the first); a scalar counts as one row."""
    return int(array.shape[0]) if array.ndim else 1


@dataclass(frozen=True)
class Embeddings:
    """Texts as vectors, one row each, and the tokens the model read for them."""

    vectors: Array
    tokens: int
