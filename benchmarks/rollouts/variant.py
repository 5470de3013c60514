"""The iris classifier, served through the python format with faults to inject: ``failShare`` (a
share of calls raise) and ``delayMs`` (each call sleeps first). Parameter ``onnx``: the model."""

import random
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import onnxruntime


class Model:
    inputs: ClassVar = [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]

    def load(self, path: Path, parameters: dict[str, str]) -> None:
        self.session = onnxruntime.InferenceSession(
            parameters["onnx"], providers=["CPUExecutionProvider"]
        )
        self.fail_share = float(parameters.get("failShare", "0"))
        self.delay = float(parameters.get("delayMs", "0")) / 1000
        self.rng = random.Random(0)  # noqa: S311 - fault injection, not secrets

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.rng.random() < self.fail_share:
            raise RuntimeError("injected failure")
        if self.delay:
            time.sleep(self.delay)
        label, probabilities = self.session.run(None, {"X": inputs["X"]})
        return {"label": label, "probabilities": probabilities}
