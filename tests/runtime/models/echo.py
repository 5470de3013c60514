"""Returns every input unchanged under the same name: exercises every datatype end to end."""

import numpy as np


class Model:
    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(inputs)
