"""The CI of a model repository, checked by the real tools for every format and task: GitHub's
workflow by actionlint (which runs shellcheck on each ``run:``), GitLab's file by GitLab's
published schema and its script by shellcheck. Each runs the checks of a pull request, and
nothing on main, where merging is the release."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import yaml

from tests.scaffold.conftest import Repository

WORKFLOW = ".github/workflows/modelplane.yaml"
SHELLCHECK = "/usr/bin/shellcheck"  # installed by scripts/actionlint-testenv


def commands(repository: Repository) -> list[str]:
    name = repository.name
    evaluate = f"modelplane evaluate -f models/{name}.yaml --dataset evaluation/{name}.jsonl"
    return ["modelplane validate -f models/", evaluate]


def test_github_workflows_pass_actionlint(
    repositories: list[Repository], actionlint: Path, tmp_path: Path
) -> None:
    workflows = [str(r.path / WORKFLOW) for r in repositories]
    result = subprocess.run([str(actionlint), f"-shellcheck={SHELLCHECK}", "-pyflakes=",
                             *workflows], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # A check that can fail: the same workflow with an unquoted variable in a script.
    broken = tmp_path / "broken.yaml"
    broken.write_text(repositories[0].text(WORKFLOW).replace("-f models/", "-f $MODELS"))
    refused = subprocess.run([str(actionlint), f"-shellcheck={SHELLCHECK}", "-pyflakes=",
                              str(broken)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 1
    assert "SC2086" in refused.stdout


def test_github_workflows_check_pull_requests_to_main(repositories: list[Repository]) -> None:
    for repository in repositories:
        workflow = yaml.safe_load(repository.text(WORKFLOW))
        assert workflow[True] == {"pull_request": {"branches": ["main"]}}  # YAML 1.1: on is True
        steps = workflow["jobs"]["check"]["steps"]
        runs = [step["run"] for step in steps if "run" in step]
        assert runs[1:] == commands(repository)
        assert "Merging to main is the release" in repository.text(WORKFLOW)


def test_gitlab_ci_files_follow_gitlabs_schema(repositories: list[Repository], peers: Path) -> None:
    schema = json.loads((peers / "gitlab" / "gitlab-ci.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    for repository in repositories:
        pipeline = yaml.safe_load(repository.text(".gitlab-ci.yml"))
        errors = [e.message for e in validator.iter_errors(pipeline)]
        assert errors == [], (repository.name, errors)
        assert pipeline["workflow"]["rules"] == [
            {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}
        ]
        assert pipeline["modelplane"]["script"][1:] == commands(repository)
        assert "Merging to main is the release" in repository.text(".gitlab-ci.yml")
    misspelt = {"modelplane": {"stage": "check", "scripts": ["true"]}}
    assert list(validator.iter_errors(misspelt))


def test_gitlab_ci_scripts_pass_shellcheck(
    repositories: list[Repository], actionlint: Path, tmp_path: Path
) -> None:
    """(actionlint's testenv installs shellcheck.)"""
    scripts = []
    for repository in repositories:
        pipeline = yaml.safe_load(repository.text(".gitlab-ci.yml"))
        script = tmp_path / f"{repository.name}.sh"
        script.write_text("\n".join(["#!/bin/sh", *pipeline["modelplane"]["script"], ""]))
        scripts.append(str(script))
    result = subprocess.run([SHELLCHECK, *scripts], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
