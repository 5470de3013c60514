"""Serves iris-shaped requests; with ``fail: "true"`` every call fails (a bad release)."""

from pathlib import Path
from typing import ClassVar

import numpy as np


class Model:
    inputs: ClassVar = [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    batchable = True

    def load(self, path: Path, parameters: dict[str, str]) -> None:
        self.fail = parameters.get("fail") == "true"

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.fail:
            raise RuntimeError("this release is broken")
        return {"label": np.zeros(len(inputs["X"]), dtype=np.int64)}
