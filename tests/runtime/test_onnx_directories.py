"""An ONNX model whose weights are external data: served from a directory holding ``model.onnx``
beside ``weights.bin``, and refused with the files named when the directory holds no model or
several."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import StartRuntime, write_manifest

WEIGHTS = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
BIAS = np.array([1.0, -1.0, 0.5], dtype=np.float32)


def save_model(directory: Path, name: str = "model.onnx") -> Path:
    """``y = X @ W + b`` with W and b stored as external data in ``weights.bin``."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["XW"]),
            helper.make_node("Add", ["XW", "b"], ["y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        [numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "b")],
    )
    # IR version 10: what the pinned onnxruntime reads (onnx writes newer by default)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save_model(
        model, str(directory / name), save_as_external_data=True,
        all_tensors_to_one_file=True, location="weights.bin", size_threshold=0,
    )  # fmt: skip
    return directory


def test_a_directory_with_external_data_is_served(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    artifact = save_model(tmp_path / "linear")
    assert (artifact / "weights.bin").stat().st_size == WEIGHTS.nbytes + BIAS.nbytes
    manifest = write_manifest(
        tmp_path / "m.yaml", "linear", artifact.as_uri(), "onnx", task="regression"
    )
    runtime = start_runtime("-f", str(manifest))
    runtime.wait_ready()
    row = [1.0, 2.0, 3.0, 4.0]
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": row}]}
    reply = httpx.post(runtime.url + "/v2/models/linear/infer", json=body)
    assert reply.status_code == 200, reply.text
    (output,) = reply.json()["outputs"]
    expected = np.array([row], dtype=np.float32) @ WEIGHTS + BIAS
    assert output["shape"] == [1, 3]
    assert np.allclose(output["data"], expected.ravel())


def test_a_directory_without_exactly_one_model_is_refused_naming_what_it_holds(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    several = save_model(save_model(tmp_path / "several"), "other.onnx")
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    (empty / "weights.bin").write_bytes(b"\0" * 64)
    for artifact, held in ((several, "model.onnx, other.onnx"), (empty, "none")):
        runtime = start_runtime("--uri", artifact.as_uri(), "--format", "onnx")
        assert runtime.wait_exit() == 3
        assert f"must hold exactly one *.onnx file at its top (it holds {held})" in (
            runtime.output()
        )
