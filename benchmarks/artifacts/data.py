"""What the model-delivery figures fetch: a directory of a few large files and many small ones,
and ONNX models whose weights are external data; written locally, then uploaded to the store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from mypy_boto3_s3 import S3Client
from onnx import TensorProto, helper, numpy_helper

MiB = 1 << 20
KiB = 1 << 10
CHUNK = 8 * MiB
WIDTH = 256  # floats in one row of the ONNX model's table


@dataclass(frozen=True)
class Layout:
    """``large`` files sharing what the small ones leave of ``total_mib``, and ``small`` files
    of ``small_kib`` each."""

    total_mib: int
    large: int = 3
    small: int = 400
    small_kib: int = 64

    def sizes(self) -> dict[str, int]:
        small_bytes = self.small * self.small_kib * KiB
        large_bytes = max(0, self.total_mib * MiB - small_bytes) // max(1, self.large)
        files = {f"large/part-{i:02d}.bin": large_bytes for i in range(self.large)}
        files |= {f"small/{i // 100:02d}/file-{i:04d}.bin": self.small_kib * KiB
                  for i in range(self.small)}  # fmt: skip
        return files


def random_file(path: Path, size: int, rng: np.random.Generator) -> None:
    """``size`` incompressible bytes, written a chunk at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for start in range(0, size, CHUNK):
            out.write(rng.bytes(min(CHUNK, size - start)))


def write_directory(root: Path, layout: Layout) -> int:
    """The layout's files under ``root``; their total size."""
    rng = np.random.default_rng(7)
    sizes = layout.sizes()
    for name, size in sizes.items():
        random_file(root / name, size, rng)
    return sum(sizes.values())


def write_onnx_model(root: Path, size_mib: int) -> int:
    """``model.onnx`` beside ``weights.bin``: an embedding table of ``size_mib`` looked up by row
    (Gather), so inference is cheap however large the weights. Returns the directory's size."""
    rows = max(1, size_mib * MiB // (WIDTH * 4))
    table = np.random.default_rng(11).standard_normal((rows, WIDTH), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "row"], ["vector"], axis=0)],
        "lookup",
        [helper.make_tensor_value_info("row", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("vector", TensorProto.FLOAT, [None, WIDTH])],
        [numpy_helper.from_array(table, "table")],
    )
    # IR version 10: what the pinned onnxruntime reads (onnx writes newer by default)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    root.mkdir(parents=True, exist_ok=True)
    onnx.save_model(
        model, str(root / "model.onnx"), save_as_external_data=True,
        all_tensors_to_one_file=True, location="weights.bin", size_threshold=0,
    )  # fmt: skip
    return sum(p.stat().st_size for p in root.iterdir())


def upload(client: S3Client, bucket: str, root: Path, prefix: str) -> None:
    """Every file under ``root`` to ``s3://bucket/prefix/...``, several at a time."""
    from s3transfer.manager import TransferManager

    with TransferManager(client) as manager:
        futures = [
            manager.upload(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")
            for path in sorted(root.rglob("*"))
            if path.is_file()
        ]
        for future in futures:
            future.result()
