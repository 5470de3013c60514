"""A batchable model that doubles its input and reports how many rows each call saw.

``sleep`` (parameter, seconds) slows each call so concurrent requests pile up; a row holding -1
makes the call fail, to show that one bad request fails alone.
"""

import time
from pathlib import Path
from typing import ClassVar

import numpy as np


class Model:
    inputs: ClassVar = [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}]
    outputs: ClassVar = [
        {"name": "doubled", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "batch_rows", "datatype": "INT64", "shape": [-1]},
    ]
    batchable = True

    def load(self, path: Path, parameters: dict[str, str]) -> None:
        self.sleep = float(parameters.get("sleep", "0"))

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["x"]
        if (x == -1).any():
            raise ValueError("poisoned row")
        time.sleep(self.sleep)
        return {"doubled": x * 2, "batch_rows": np.full(len(x), len(x), dtype=np.int64)}
