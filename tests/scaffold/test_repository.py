"""The repository ``modelplane init`` writes, for every format and task: a Model ``modelplane
validate`` takes, with a canary rollout; evaluation data in the shape of the task's requests; the
layout a git source reads; registration as the platform's own examples do it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from modelplane.api import GENERATIVE_TASKS, ModelFormat, Protocol, RolloutStrategy, Task
from modelplane.api import inference_protocol as p
from modelplane.cli.repository_templates import RepositoryValues, render
from modelplane.control.gitops import SyncPlan, plan_sync
from modelplane.gitops.repository import GitMirror
from modelplane.runtime.openai import schemas
from tests.processes import free_port, modelplane
from tests.scaffold.conftest import NAMESPACE, Repository
from tests.scaffold.tools import ROOT

METRICS = {Task.CLASSIFICATION: "accuracy", Task.REGRESSION: "meanAbsoluteError",
           Task.EMBEDDING: "cosineSimilarity", Task.TEXT_GENERATION: "exactMatch",
           Task.CHAT: "exactMatch"}  # fmt: skip
OPENAI_REQUESTS: dict[Task, type[BaseModel]] = {
    Task.EMBEDDING: schemas.EmbeddingRequest,
    Task.CHAT: schemas.ChatCompletionRequest,
    Task.TEXT_GENERATION: schemas.CompletionRequest,
}


def test_modelplane_validate_takes_every_repositorys_models(
    repositories: list[Repository],
) -> None:
    folders = [a for r in repositories for a in ("-f", str(r.path / "models"))]
    result = subprocess.run(modelplane("validate", *folders), capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    for repository in repositories:
        assert f"{NAMESPACE}/{repository.name} is valid (revision digest " in result.stdout


def test_each_model_rolls_out_as_a_canary_judged_by_the_tasks_metrics(
    repositories: list[Repository],
) -> None:
    for repository in repositories:
        spec = repository.model.spec
        assert (spec.format, spec.task) == (repository.format, repository.task)
        assert spec.rollout.strategy == RolloutStrategy.CANARY
        assert [s.weight for s in spec.rollout.steps] == [10, 50]
        written = repository.documents(f"models/{repository.name}.yaml")[0]["spec"]["rollout"]
        judged = set(written["analysis"])
        if repository.task in GENERATIVE_TASKS:
            assert {"maxTimeToFirstTokenP99Ms", "maxTimePerOutputTokenP99Ms"} <= judged
        else:
            assert {"maxLatencyP99Ms", "maxDisagreement"} <= judged
        assert (
            written["evaluation"]["dataset"] == f"s3://CHANGE-ME/{repository.name}/evaluation.jsonl"
        )
        # Pickles load only pinned, and a vLLM engine needs an accelerator.
        assert spec.runtime.allow_pickle == (repository.format == ModelFormat.SKLEARN)
        assert (spec.resources.accelerators == 1) == (repository.format == ModelFormat.VLLM)


@pytest.mark.parametrize("task", list(Task))
def test_the_evaluation_gate_names_the_repositorys_dataset_and_the_tasks_metric(
    task: Task,
) -> None:
    """The gate the platform runs, on the dataset it fetches; CI evaluates the repository's copy."""
    model_format = ModelFormat.PYTHON  # serves every task
    values = RepositoryValues(
        "m", NAMESPACE, model_format, task, "s3://b/m", "group:a", "s3://b/m/evaluation.jsonl"
    )
    rendered = render(values)
    model = yaml.safe_load(rendered["models/m.yaml"])
    gate = model["spec"]["rollout"]["evaluation"]
    assert gate["dataset"] == "s3://b/m/evaluation.jsonl"
    assert "evaluation/m.jsonl" in rendered
    assert gate["metric"] == METRICS[task]
    assert isinstance(gate["threshold"], float)
    assert gate["relativeToStable"] is False
    assert f"The metric is `{METRICS[task]}`" in rendered["evaluation/README.md"]


def test_evaluation_data_has_the_shape_of_the_tasks_requests(
    repositories: list[Repository],
) -> None:
    v2_inputs = {"type": "array", "minItems": 1, "items": p.ANY_INPUT}
    for repository in repositories:
        lines = repository.text(f"evaluation/{repository.name}.jsonl").splitlines()
        assert len(lines) >= 3
        for line in map(json.loads, lines):
            assert set(line) == {"inputs", "expected"}
            if Protocol.V2 in (repository.model.spec.protocols or ()) and repository.task != (
                Task.EMBEDDING
            ):
                jsonschema.validate(line["inputs"], v2_inputs)
            else:
                body = {**line["inputs"], "model": repository.model.key}
                OPENAI_REQUESTS[repository.task].model_validate(body)


def test_a_commit_of_the_repository_is_what_a_git_source_applies(
    repositories: list[Repository], tmp_path: Path
) -> None:
    """Read the way ``modelplane gitops add NAME URL --path models`` reads it."""
    repository = repositories[0]
    work = tmp_path / "work"
    shutil.copytree(repository.path, work)
    for args in (["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@example.com",
                                 "commit", "-qm", "Serve the model"]):  # fmt: skip
        subprocess.run(["git", "-C", str(work), *args], check=True, timeout=30)
    mirror = GitMirror(str(work), tmp_path / "mirror")
    commit = mirror.fetch("main")
    files = mirror.files(commit, "models")
    assert list(files) == [f"models/{repository.name}.yaml"]
    plan = plan_sync(commit, files, frozenset(), prune=True)
    assert isinstance(plan, SyncPlan), plan
    assert [m.key for m in plan.apply] == [f"{NAMESPACE}/{repository.name}"]


def _yaml_blocks(markdown: str) -> list[list[dict[str, object]]]:
    blocks = re.findall(r"```yaml\n(.*?)```", markdown, flags=re.DOTALL)
    return [list(yaml.safe_load_all(block)) for block in blocks]


def test_the_readme_registers_the_repository_as_the_platforms_examples_do(
    repositories: list[Repository],
) -> None:
    """Argo CD and Flux as deploy/argocd and deploy/flux (tested against their CRDs) show it,
    with only the names, the repository and the namespace changed."""
    repository = repositories[0]
    name, url = repository.name, f"https://git.example.com/CHANGE-ME/{repository.name}.git"
    (application,), flux = _yaml_blocks(repository.text("README.md"))
    expected = yaml.safe_load((ROOT / "deploy/argocd/application.yaml").read_text())
    expected["metadata"]["name"] = name
    expected["spec"]["source"]["repoURL"] = url
    expected["spec"]["destination"]["namespace"] = NAMESPACE
    assert application == expected
    source, kustomization = yaml.safe_load_all((ROOT / "deploy/flux/models.yaml").read_text())
    source["metadata"]["name"] = kustomization["metadata"]["name"] = name
    source["spec"]["url"] = url
    kustomization["spec"]["sourceRef"]["name"] = name
    kustomization["spec"]["targetNamespace"] = NAMESPACE
    assert flux == [source, kustomization]


def test_the_readmes_gitops_command_is_one_the_cli_takes(repositories: list[Repository]) -> None:
    """Its arguments parse: the call gets as far as the control API (here, none listening)."""
    (line,) = [
        line for line in repositories[0].text("README.md").splitlines()
        if line.startswith("modelplane gitops add ")
    ]  # fmt: skip
    server = f"http://127.0.0.1:{free_port()}"
    args = [*line.split()[1:], "--server", server]
    result = subprocess.run(modelplane(*args), capture_output=True, text=True, timeout=60,
                            check=False)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"error: cannot reach the control plane at {server}")
