"""``modelplane evaluate``: the evaluation gate a rollout runs, run here (locally or in CI)
against the Model served by a ``modelplane serve`` child."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated

import httpx
import pydantic
import typer

from modelplane.api import Evaluation, EvaluationMetric, EvaluationResult, Model, load_model_file
from modelplane.artifacts.credentials import credentials_env
from modelplane.backends.evaluating import evaluate as replay_and_judge
from modelplane.backends.evaluating import read_dataset
from modelplane.backends.evaluation_gates import fetch_dataset
from modelplane.backends.scorers import load_scorer
from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.control.evaluation import SCORER_FAILED, scorer_failed
from modelplane.errors import ScorerError
from modelplane.processes import die_with_parent, free_port, stop_process

READY_POLL_SECONDS = 0.2
EXIT_SCORER_FAILED = 3  # the scorer, not the model, failed: a CI job can tell the two apart


def evaluate(
    file: Annotated[Path, typer.Option("--file", "-f", help="The Model manifest.")],
    dataset: Annotated[
        str | None,
        typer.Option(help="JSON lines of examples (a path or URI); default: the gate's dataset."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Which Model of a multi-document file.")] = None,
    metric: Annotated[
        EvaluationMetric | None, typer.Option(help="Default: the gate's metric.")
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="Default: the gate's.")] = None,
    scorer: Annotated[
        str | None,
        typer.Option(
            help="package.module:function or an entry point in group modelplane.scorers, "
            "installed here; implies --metric scorer. Default: the gate's."
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="The stable revision's manifest, for a gate relative to it (e.g. main's copy)."
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the model to load.")] = 300,
    output: Annotated[str, typer.Option("--output", "-o", help="json: the verdict.")] = "",
) -> None:
    """Replay an evaluation dataset against the Model and judge it as the rollout's gate would:
    exit 0 when it passes, 1 when it does not, 3 when its scorer failed."""
    model = _model(file, name)
    gate = _gate(model, dataset, metric, threshold, scorer)
    if gate.relative_to_stable and baseline is None:
        raise CliError("the gate is relative to the stable revision: give --baseline MANIFEST",
                       exit_code=EXIT_USAGE)  # fmt: skip
    if gate.scorer:
        try:  # before the model is served: a scorer missing here fails in seconds
            load_scorer(gate.scorer)
        except ScorerError as exc:
            _report(scorer_failed(gate, str(exc)), output)
    local = Path(gate.dataset)
    path = local if local.is_file() else fetch_dataset(model, gate.dataset, _env(model))
    examples = read_dataset(path, gate.max_examples, gate.dataset)
    with _serving(file, model, timeout) as canary:
        if baseline is not None:
            with _serving(baseline, _model(baseline, name), timeout) as stable:
                verdict = asyncio.run(
                    replay_and_judge(gate, examples, model.metadata.name, canary, stable)
                )
        else:
            verdict = asyncio.run(replay_and_judge(gate, examples, model.metadata.name, canary))
    _report(verdict, output)


def _report(verdict: EvaluationResult, output: str) -> None:
    """Print the verdict; leave with its exit code unless it passed."""
    if output == "json":
        typer.echo(json.dumps(verdict.model_dump(mode="json", by_alias=True, exclude_none=True)))
    else:
        typer.echo(f"{'passed' if verdict.passed else 'FAILED'}: {verdict.message}")
    if verdict.reason == SCORER_FAILED:
        raise typer.Exit(EXIT_SCORER_FAILED)
    if not verdict.passed:
        raise typer.Exit(1)


def _model(file: Path, name: str | None) -> Model:
    models = load_model_file(file)
    chosen = [m for m in models if name in (None, m.metadata.name)]
    if not chosen:
        raise CliError(f"{file} has no Model named {name!r}", exit_code=EXIT_USAGE)
    return chosen[0]


def _gate(
    model: Model,
    dataset: str | None,
    metric: EvaluationMetric | None,
    threshold: float | None,
    scorer: str | None,
) -> Evaluation:
    """The spec's gate with the options over it: --scorer means metric scorer, and another
    --metric drops the spec's scorer."""
    given = model.spec.rollout.evaluation
    if scorer is not None and metric is None:
        metric = EvaluationMetric.SCORER
    fields = {"dataset": dataset, "metric": metric, "threshold": threshold}
    if given is None:
        missing = [f"--{k}" for k, v in fields.items() if v is None]
        if missing:
            raise CliError(
                f"{model.metadata.name} has no spec.rollout.evaluation: give {', '.join(missing)}",
                exit_code=EXIT_USAGE,
            )
    base = given.model_dump(by_alias=True) if given is not None else {}
    if metric is not None and metric is not EvaluationMetric.SCORER:
        base.pop("scorer", None)
    options = {k: v for k, v in {**fields, "scorer": scorer}.items() if v is not None}
    try:
        return Evaluation.model_validate({**base, **options})
    except pydantic.ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise CliError(f"the evaluation gate: {problems}", exit_code=EXIT_USAGE) from exc


def _env(model: Model) -> dict[str, str]:
    return credentials_env(model.spec.source)


@contextlib.contextmanager
def _serving(file: Path, model: Model, timeout: float) -> Iterator[str]:
    """``modelplane serve`` of ``model`` on a free port, until the block ends; its URL."""
    port = free_port()
    command = [sys.executable, "-m", "modelplane", "serve", "-f", str(file),
               "--name", model.metadata.name, "--port", str(port)]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:  # not a pipe: a chatty model never blocks on it
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True,
                                 preexec_fn=die_with_parent)  # fmt: skip
        try:
            _wait_ready(child, log, url, model.metadata.name, timeout)
            yield url
        finally:
            stop_process(child)


def _wait_ready(
    child: subprocess.Popen[str], log: IO[str], url: str, name: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            log.seek(0)
            said = [line for line in log.read().splitlines() if line.strip()]
            raise CliError(f"{name} did not start: {said[-1] if said else child.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/v2/models/{name}/ready", timeout=2).status_code == 200:
                return
        time.sleep(READY_POLL_SECONDS)
    raise CliError(f"{name} was not ready after {timeout:g} s", hint="raise --timeout")
