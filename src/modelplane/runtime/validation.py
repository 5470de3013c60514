"""Checks of an inference request against the model's signature: the inputs it declares (names,
datatypes, shapes) and the outputs it returns.

The data plane runs them before a request reaches the batcher, so a request that does not fit the
model is refused with a message naming what to change, and never costs a model call.
"""

from __future__ import annotations

from modelplane.errors import InvalidRequestError
from modelplane.runtime.formats.base import Signature
from modelplane.runtime.types import InferenceRequest, Tensor, TensorSpec, rows


def check_inputs(signature: Signature, request: InferenceRequest) -> None:
    """Refuse inputs other than the ones ``signature`` declares (if it declares any)."""
    declared = {spec.name: spec for spec in signature.inputs}
    if not declared:
        return
    given = {tensor.name for tensor in request.inputs}
    missing = sorted(declared.keys() - given)
    if missing:
        raise InvalidRequestError(
            f"missing input {', '.join(map(repr, missing))}; the model takes "
            f"{_describe(signature.inputs)}"
        )
    extra = sorted(given - declared.keys())
    if extra:
        raise InvalidRequestError(
            f"unexpected input {', '.join(map(repr, extra))}; the model takes "
            f"{_describe(signature.inputs)}"
        )
    for tensor in request.inputs:
        _check_tensor(tensor, declared[tensor.name])
        if signature.batchable and not rows(tensor.data):
            # A batch of none: models differ on it (some fail), and it asks nothing.
            raise InvalidRequestError(
                f"input {tensor.name!r} has shape {list(tensor.shape)}, no rows; the first "
                f"dimension is the batch, of at least one"
            )


def wanted_outputs(signature: Signature, request: InferenceRequest) -> list[str]:
    """The outputs the request asks for (all declared, if it names none); unknown ones refused."""
    if request.outputs is None:
        return [spec.name for spec in signature.outputs]
    wanted = [output.name for output in request.outputs]
    declared = {spec.name for spec in signature.outputs}
    unknown = [n for n in wanted if declared and n not in declared]
    if unknown:
        raise InvalidRequestError(
            f"unknown output {', '.join(map(repr, unknown))}; the model returns "
            f"{', '.join(map(repr, sorted(declared)))}"
        )
    return wanted


def _check_tensor(tensor: Tensor, spec: TensorSpec) -> None:
    where = f"input {tensor.name!r}"
    if tensor.datatype != spec.datatype and not (
        tensor.datatype == "BF16" and spec.datatype == "FP32"
    ):
        raise InvalidRequestError(
            f"{where} has datatype {tensor.datatype}, the model expects {spec.datatype}"
        )
    shape = tensor.shape
    if len(shape) != len(spec.shape) or any(
        want not in (-1, got) for want, got in zip(spec.shape, shape, strict=True)
    ):
        raise InvalidRequestError(
            f"{where} has shape {list(shape)}, the model expects {list(spec.shape)} "
            f"(-1 is any size)"
        )


def _describe(specs: tuple[TensorSpec, ...]) -> str:
    return ", ".join(f"{s.name!r} ({s.datatype} {list(s.shape)})" for s in specs)
