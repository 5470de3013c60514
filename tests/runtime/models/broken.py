"""Fails in load(): the runtime must exit with the reason, not serve."""

from pathlib import Path


class Model:
    def load(self, path: Path, parameters: dict[str, str]) -> None:
        raise RuntimeError("weights file is corrupt")

    def predict(self, inputs: dict) -> dict:
        return inputs
