"""KServe's Python model server serving the iris ONNX model, as a KServe user would write it.

Run in its own virtual environment: python kserve_server.py MODEL.onnx --http_port PORT
"""

from __future__ import annotations

import sys
import uuid

import kserve
import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse


class Iris(kserve.Model):
    def __init__(self, path: str) -> None:
        super().__init__("iris")
        self.path = path

    def load(self) -> bool:
        self.session = ort.InferenceSession(self.path, providers=["CPUExecutionProvider"])
        self.ready = True
        return True

    def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        features = payload.inputs[0].as_numpy().astype(np.float32)
        label, probabilities = self.session.run(None, {"X": features})
        outputs = [
            InferOutput("label", list(label.shape), "INT64"),
            InferOutput("probabilities", list(probabilities.shape), "FP32"),
        ]
        outputs[0].set_data_from_numpy(label, binary_data=False)
        outputs[1].set_data_from_numpy(probabilities, binary_data=False)
        return InferResponse(
            model_name=self.name,
            infer_outputs=outputs,
            response_id=payload.id or str(uuid.uuid4()),
        )


if __name__ == "__main__":
    model_path = sys.argv.pop(1)  # kserve parses the remaining arguments itself
    model = Iris(model_path)
    model.load()
    kserve.ModelServer(workers=1).start([model])
