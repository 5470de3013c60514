"""Registers models with a real MLflow tracking server, as a user would, with MLflow's own client.

Run by the Python of the venv ``scripts/mlflow-testenv`` builds (not modelplane's), with the
server, its credentials and the S3 store in the environment. ``argv[1]`` is a JSON list of steps;
it prints a JSON list of the version each step made or touched:
  {"log": "onnx", "name": N, "onnx": PATH}              the ONNX model at PATH
  {"log": "sklearn", "name": N, "serialization": FMT}   an iris classifier (cloudpickle, pickle)
  {"log": "pyfunc", "name": N}                          a python_function model only
  {"alias": A, "name": N, "version": V}                 points alias A at version V
"""

from __future__ import annotations

import json
import sys
from typing import Any

import mlflow
import mlflow.onnx
import mlflow.pyfunc
import mlflow.sklearn
import onnx
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


class Constant(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    def predict(self, context: Any, model_input: Any, params: Any = None) -> list[int]:
        return [0] * len(model_input)


def log(step: dict[str, str]) -> str:
    name, kind = step["name"], step["log"]
    if kind == "onnx":
        info = mlflow.onnx.log_model(
            onnx.load(step["onnx"]), name="model", registered_model_name=name
        )
    elif kind == "sklearn":
        features, labels = load_iris(return_X_y=True)
        classifier = LogisticRegression(max_iter=500).fit(features, labels)
        info = mlflow.sklearn.log_model(
            classifier, name="model", registered_model_name=name,
            serialization_format=step["serialization"],
        )  # fmt: skip
    else:
        info = mlflow.pyfunc.log_model(
            name="model", python_model=Constant(), registered_model_name=name
        )
    return str(info.registered_model_version)


def main(steps: list[dict[str, str]]) -> list[str]:
    done = []
    for step in steps:
        if "alias" in step:
            MlflowClient().set_registered_model_alias(step["name"], step["alias"], step["version"])
            done.append(step["version"])
        else:
            done.append(log(step))
    return done


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
