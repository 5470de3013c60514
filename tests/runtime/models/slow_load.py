"""Takes ``delay`` seconds to load and ``predict_delay`` seconds per call: readiness and drain."""

import time
from pathlib import Path

import numpy as np


class Model:
    def load(self, path: Path, parameters: dict[str, str]) -> None:
        time.sleep(float(parameters.get("delay", "0")))
        self.predict_delay = float(parameters.get("predict_delay", "0"))

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(self.predict_delay)
        return dict(inputs)
