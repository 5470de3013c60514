"""Serves iris-shaped requests with a constant label (parameter ``label``, default 0); with
``fail: "true"`` every call fails, with ``delayMs`` every call takes that long. Ways for a release
to be bad."""

import time
from pathlib import Path
from typing import ClassVar

import numpy as np


class Model:
    inputs: ClassVar = [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    batchable = True

    def load(self, path: Path, parameters: dict[str, str]) -> None:
        self.fail = parameters.get("fail") == "true"
        self.label = int(parameters.get("label", "0"))
        self.delay = float(parameters.get("delayMs", "0")) / 1000

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("this release is broken")
        return {"label": np.full(len(inputs["X"]), self.label, dtype=np.int64)}
