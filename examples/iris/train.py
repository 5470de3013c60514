"""Train the iris example: a scikit-learn classifier written as ONNX and as joblib, with manifests.

Run from anywhere: ``python examples/iris/train.py``. Writes next to this file:
  model.onnx, model.joblib          the artifacts
  iris.yaml                          a Model serving the ONNX artifact (recommended)
  iris-sklearn.yaml                  a Model serving the joblib artifact (pickle, pinned)
Both manifests pin the artifacts' sha256, so a changed file is refused rather than served.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import joblib
import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent

MANIFEST = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata:
  name: {name}
spec:
  source:
    uri: file://{uri}
    sha256: {sha256}
  format: {format}
  task: classification
{extra}"""


def train(shuffle_labels: bool = False, seed: int = 0) -> LogisticRegression:
    """Fit iris; ``shuffle_labels`` makes a deliberately bad model for rollout demos."""
    features, labels = load_iris(return_X_y=True)
    if shuffle_labels:
        labels = np.random.default_rng(seed).permutation(labels)
    return LogisticRegression(max_iter=500).fit(features.astype(np.float32), labels)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(out: Path, model: LogisticRegression) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sample = np.zeros((1, 4), dtype=np.float32)
    onnx_model = to_onnx(model, sample, options={id(model): {"zipmap": False}}, target_opset=17)
    onnx_path = out / "model.onnx"
    onnx_path.write_bytes(onnx_model.SerializeToString())
    joblib_path = out / "model.joblib"
    joblib.dump(model, joblib_path)
    (out / "iris.yaml").write_text(
        MANIFEST.format(
            name="iris", uri=onnx_path, sha256=sha256(onnx_path), format="onnx", extra=""
        )
    )
    (out / "iris-sklearn.yaml").write_text(
        MANIFEST.format(
            name="iris-sklearn",
            uri=joblib_path,
            sha256=sha256(joblib_path),
            format="sklearn",
            extra="  runtime:\n    allowPickle: true\n",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output directory")
    parser.add_argument("--shuffle-labels", action="store_true", help="train a bad model")
    args = parser.parse_args()
    write(args.out, train(args.shuffle_labels))
    print(f"wrote iris artifacts and manifests to {args.out}")


if __name__ == "__main__":
    main()
