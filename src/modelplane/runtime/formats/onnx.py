"""ONNX models through onnxruntime: the recommended, code-free format.

The artifact is a ``.onnx`` file, or a directory holding one beside its external data (weights
over protobuf's 2 GiB limit are kept that way); onnxruntime finds the data next to the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelplane.errors import ModelLoadError, PredictError
from modelplane.runtime.formats.base import LoadContext, Signature
from modelplane.runtime.types import Array, TensorSpec

_ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


class OnnxPredictor:
    def __init__(self, context: LoadContext) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # As many threads as the spec grants CPUs: more only add wake-ups on a small model.
        options.intra_op_num_threads = context.whole_number("intraOpThreads", context.cpu_threads)
        # Spinning threads would steal the core the event loop needs between calls.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model = _model_file(context.artifact)
        try:
            self._session = ort.InferenceSession(
                str(model), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(f"onnxruntime cannot load {model.name}: {exc}") from exc
        inputs = tuple(_spec(arg, "input") for arg in self._session.get_inputs())
        outputs = tuple(_spec(arg, "output") for arg in self._session.get_outputs())
        batchable = all(s.shape and s.shape[0] == -1 for s in inputs + outputs)
        self._signature = Signature("onnxruntime", inputs, outputs, batchable)
        self._string_inputs = {s.name for s in inputs if s.datatype == "BYTES"}

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: dict[str, Array], outputs: frozenset[str]) -> dict[str, Array]:
        feed = {
            name: value.astype(str) if name in self._string_inputs else value
            for name, value in inputs.items()
        }
        names = [s.name for s in self._signature.outputs if s.name in outputs]
        try:
            results = self._session.run(names, feed)
        except Exception as exc:
            raise PredictError(f"onnxruntime failed: {exc}") from exc
        return dict(zip(names, results, strict=True))


def _model_file(artifact: Path) -> Path:
    """The artifact itself, or the one ``*.onnx`` file at the top of a directory artifact."""
    if not artifact.is_dir():
        return artifact
    found = sorted(artifact.glob("*.onnx"))
    if len(found) != 1:
        held = ", ".join(p.name for p in found) if found else "none"
        raise ModelLoadError(
            f"the ONNX artifact {artifact.name}/ is a directory, which must hold exactly one "
            f"*.onnx file at its top (it holds {held}); keep one model per artifact, its "
            f"external data beside it"
        )
    return found[0]


def _spec(arg: Any, role: str) -> TensorSpec:
    datatype = _ORT_TYPES.get(arg.type)
    if datatype is None:
        raise ModelLoadError(
            f"ONNX {role} {arg.name!r} has type {arg.type}, which is not a tensor; "
            f"re-export the model with tensor outputs (for skl2onnx classifiers: "
            f"options={{'zipmap': False}})"
        )
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
    return TensorSpec(arg.name, datatype, shape)
