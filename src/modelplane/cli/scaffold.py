"""``modelplane init``: a new model repository a team releases from by merging to main.

It writes the repository of :mod:`modelplane.cli.repository_templates` (the Model with its canary
rollout, evaluation data, CI for GitHub and GitLab, the layout a git source reads, a Backstage
catalog file) into a new directory, checks the Model as ``modelplane validate`` would, and starts
a git repository there without committing anything.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from modelplane.api import ModelFormat, Source, Task, load_models
from modelplane.api.meta import DNS_1035_LABEL, DNS_LABEL, MAX_NAME_LENGTH
from modelplane.api.model import FORMAT_TASKS
from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.cli.repository_templates import (
    RepositoryValues,
    default_owner,
    placeholder_dataset,
    placeholder_source,
    render,
)

# A Backstage entity reference: [kind:][namespace/]name.
ENTITY_REF = re.compile(
    r"([A-Za-z][A-Za-z0-9]*:)?([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?"
)
# The characters of a URI (RFC 3986): nothing that needs quoting inside a YAML string.
URI_CHARACTERS = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+")
# What a format serves first when no task is given.
FIRST_TASKS = (Task.CLASSIFICATION, Task.CHAT)


def init(
    name: Annotated[str, typer.Argument(help="The model's name (a DNS label).")],
    model_format: Annotated[
        ModelFormat, typer.Option("--format", help="The artifact's format.")
    ] = ModelFormat.ONNX,
    task: Annotated[
        Task | None,
        typer.Option(help="What the model does; default classification, or chat for LLMs."),
    ] = None,
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="The namespace it serves in.")
    ] = "default",
    source: Annotated[
        str | None,
        typer.Option(help="The artifact's URI; default a placeholder marked CHANGE-ME."),
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option(help="The Backstage owner; default group:default/<namespace>."),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Where the platform fetches the evaluation dataset (a copy of the repository's "
            "evaluation/NAME.jsonl); default a placeholder marked CHANGE-ME."
        ),
    ] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to write it; default ./NAME.")
    ] = None,
) -> None:
    """Write a new model repository: the Model with a canary rollout, evaluation data, CI for
    GitHub and GitLab, a README on registering it with the platform, a Backstage catalog file."""
    values = RepositoryValues(
        name=_checked(name, DNS_1035_LABEL, "NAME", MAX_NAME_LENGTH),
        namespace=_checked(namespace, DNS_LABEL, "--namespace", 63),
        format=model_format.value,
        task=_task(model_format, task).value,
        source=_source(source, "--source") if source is not None else placeholder_source(name),
        owner=_owner(owner) if owner is not None else default_owner(namespace),
        dataset=_source(dataset, "--dataset") if dataset is not None else placeholder_dataset(name),
    )
    rendered = render(values)
    model_path = f"models/{values.name}.yaml"
    load_models(rendered[model_path], model_path)  # a template that renders no valid Model
    target = directory if directory is not None else Path(name)
    _write(target, rendered)
    typer.echo(f"wrote a model repository for {values.namespace}/{values.name} in {target}:")
    for path in rendered:
        typer.echo(f"  {path}")
    typer.echo(_start_git(target))
    typer.echo(_next_steps(values, source is None, dataset is None))


def _checked(value: str, pattern: str, what: str, longest: int) -> str:
    if len(value) > longest or not re.fullmatch(pattern, value):
        raise CliError(
            f"{what} {value!r} is not a DNS label of at most {longest} characters",
            hint="use lower-case letters, digits and '-', starting with a letter",
            exit_code=EXIT_USAGE,
        )
    return value


def _task(model_format: ModelFormat, task: Task | None) -> Task:
    serves = FORMAT_TASKS.get(model_format, frozenset(Task))
    if task is None:
        return next(t for t in FIRST_TASKS if t in serves)
    if task not in serves:
        raise CliError(
            f"format {model_format.value!r} cannot serve task {task.value!r}",
            hint=f"it serves: {', '.join(sorted(serves))}",
            exit_code=EXIT_USAGE,
        )
    return task


def _source(uri: str, option: str) -> str:
    if not URI_CHARACTERS.fullmatch(uri):
        raise CliError(f"{option} {uri!r} is not a URI", exit_code=EXIT_USAGE,
                       hint="spaces, quotes and the like must be percent-encoded")  # fmt: skip
    try:
        Source(uri=uri)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise CliError(f"{option} {uri!r}: {reason}", exit_code=EXIT_USAGE) from exc
    return uri


def _owner(owner: str) -> str:
    if not ENTITY_REF.fullmatch(owner):
        raise CliError(f"--owner {owner!r} is not a Backstage entity reference",
                       hint="write it as [kind:][namespace/]name, e.g. group:default/ml-team",
                       exit_code=EXIT_USAGE)  # fmt: skip
    return owner


def _write(target: Path, rendered: dict[str, str]) -> None:
    """Into a new or empty directory only: a repository is never written over another."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CliError(f"{target} exists and is not an empty directory",
                       hint="choose another --dir, or remove it first")  # fmt: skip
    for path, text in rendered.items():
        file = target / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")


def _start_git(target: Path) -> str:
    if shutil.which("git") is None:
        return "git is not installed: run `git init -b main` there once it is"
    done = subprocess.run(["git", "init", "-q", "-b", "main", str(target)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        return f"git init failed ({done.stderr.strip()}): the files are written all the same"
    return "started a git repository there on branch main (nothing committed)"


def _next_steps(values: RepositoryValues, placeholder: bool, no_dataset: bool) -> str:
    steps = [
        f"set spec.source.uri in models/{values.name}.yaml (now {values.source})"
        if placeholder
        else f"check models/{values.name}.yaml",
        f"replace the examples in evaluation/{values.name}.jsonl with real cases"
        + (
            f", and upload it to {values.dataset} (or set spec.rollout.evaluation.dataset)"
            if no_dataset
            else f" (the platform reads {values.dataset})"
        ),
        "commit, push, and register the repository: "
        f"modelplane gitops add {values.name} <repository URL> --path models "
        "(README.md shows Argo CD and Flux too)",
    ]
    return "next:\n" + "\n".join(f"  {n}. {step}" for n, step in enumerate(steps, 1))
