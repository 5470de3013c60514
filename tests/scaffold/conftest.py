"""Model repositories written by ``modelplane init``, one per format and task it can serve."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelplane.api import Model, ModelFormat, Task, load_models
from modelplane.api.model import FORMAT_TASKS
from modelplane.cli.main import main
from tests.scaffold.tools import actionlint_binary, scaffold_peers

NAMESPACE = "ml"
COMBINATIONS = [
    (f, t) for f in ModelFormat for t in Task if t in FORMAT_TASKS.get(f, frozenset(Task))
]


@dataclass(frozen=True)
class Repository:
    path: Path
    format: ModelFormat
    task: Task

    @property
    def name(self) -> str:
        return f"{self.format.value}-{self.task.value}"

    @property
    def model(self) -> Model:
        (model,) = load_models(self.text(f"models/{self.name}.yaml"), self.name)
        return model

    def text(self, path: str) -> str:
        return (self.path / path).read_text()

    def documents(self, path: str) -> list[Any]:
        return list(yaml.safe_load_all(self.text(path)))

    def files(self) -> dict[str, str]:
        """Every file ``init`` wrote (git's own folder left out), by relative path."""
        return {
            p.relative_to(self.path).as_posix(): p.read_text()
            for p in sorted(self.path.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(self.path).parts[:1]
        }


@pytest.fixture(scope="session")
def repositories(tmp_path_factory: pytest.TempPathFactory) -> list[Repository]:
    """Written in this process through the command's entry point, as ``modelplane init`` runs
    it (the command itself as a subprocess is tested in test_init.py)."""
    root = tmp_path_factory.mktemp("repositories")
    made = [Repository(root / f"{f.value}-{t.value}", f, t) for f, t in COMBINATIONS]
    for repository in made:
        argv = ["init", repository.name, "--format", repository.format.value, "--task",
                repository.task.value, "-n", NAMESPACE, "--dir", str(repository.path)]  # fmt: skip
        assert main(argv) == 0
    return made


@pytest.fixture(scope="session")
def peers() -> Path:
    return scaffold_peers()


@pytest.fixture(scope="session")
def actionlint() -> Path:
    return actionlint_binary()
