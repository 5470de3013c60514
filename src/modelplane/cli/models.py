"""``apply``, ``get``, ``describe``, ``delete``, ``logs``: Models through the control API."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from modelplane.api import Model, ScalingMetric, dump_json, dump_yaml, load_model_file, load_models
from modelplane.cli.client import DEFAULT_SERVER, ControlClient, credentials
from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.cli.output import age, models_table, replicas, table
from modelplane.cli.resources import manifest_files
from modelplane.control.conditions import READY, condition
from modelplane.gitops.sync import SOURCE_LABEL

ServerOption = Annotated[
    str, typer.Option("--server", help="Control API URL.", envvar="MODELPLANE_SERVER")
]
NamespaceOption = Annotated[str, typer.Option("--namespace", "-n", help="Namespace.")]
RESOURCE_NAMES = ("models", "model", "mdl", "mdls")


# How ``describe`` words each scaling metric's target.
SCALING_UNITS = {
    ScalingMetric.IN_FLIGHT: "in flight",
    ScalingMetric.WAITING: "waiting (as the replicas report)",
    ScalingMetric.KV_CACHE: "of the KV cache (as the replicas report)",
    ScalingMetric.TOKENS_PER_SECOND: "tokens/s (as the replicas report)",
}


def _check_resource(resource: str) -> None:
    if resource.lower() not in RESOURCE_NAMES:
        raise CliError(
            f'unknown resource type "{resource}"', hint="the resource type is: models (short: mdl)",
            exit_code=EXIT_USAGE,
        )  # fmt: skip


def _read_manifests(file: str) -> list[Model]:
    if file == "-":
        return load_models(sys.stdin.read(), "<stdin>")
    return [m for f in manifest_files(Path(file)) for m in load_model_file(f)]


def apply(
    file: Annotated[str, typer.Option("--file", "-f", help="A file, a directory, or - for stdin.")],
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Create or update Models from manifests; every document is validated before any is applied."""
    models = _read_manifests(file)
    client = ControlClient(server)
    for model in models:
        _, outcome = client.apply(model)
        typer.echo(f"model.modelplane.io/{model.metadata.name} {outcome}")


def get(
    resource: Annotated[str, typer.Argument(help="models")],
    name: Annotated[str | None, typer.Argument()] = None,
    namespace: NamespaceOption = "default",
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A")] = False,
    output: Annotated[str, typer.Option("--output", "-o", help="yaml, json or wide.")] = "",
    selector: Annotated[str | None, typer.Option("--selector", "-l")] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Print changes as they happen.")
    ] = False,
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """List Models, or show one."""
    _check_resource(resource)
    client = ControlClient(server)
    if output not in ("", "yaml", "json", "wide"):
        raise CliError(
            f"unknown output format {output!r}",
            hint="use -o yaml, json or wide",
            exit_code=EXIT_USAGE,
        )
    scope = None if all_namespaces else namespace
    if watch:
        _watch(client, scope, selector, name, output == "wide", all_namespaces)
        return
    models = [client.get(namespace, name)] if name else client.list_models(scope, selector)
    if output in ("yaml", "json"):
        _print_documents(models[0] if name else models, output)
    elif not models:
        typer.echo(
            f"No models found in {'any namespace' if all_namespaces else namespace}.", err=True
        )
    else:
        typer.echo(models_table(models, wide=output == "wide", all_namespaces=all_namespaces))


def _print_documents(found: Model | list[Model], output: str) -> None:
    """A named Model as itself; a listing as kubectl's ``List``, even of one or none."""
    if output == "yaml":
        typer.echo(dump_yaml(found), nl=False)
    else:
        typer.echo(dump_json(found))


def _watch(
    client: ControlClient, namespace: str | None, selector: str | None, name: str | None,
    wide: bool, all_namespaces: bool,
) -> None:  # fmt: skip
    header_done = False
    for event in client.watch(namespace, selector):
        model = Model.model_validate(event["object"])
        if name and model.metadata.name != name:
            continue
        lines = models_table([model], wide=wide, all_namespaces=all_namespaces).splitlines()
        if not header_done:
            typer.echo(lines[0])
            header_done = True
        suffix = "   (deleted)" if event["type"] == "DELETED" else ""
        typer.echo(lines[1] + suffix)


def describe(
    resource: Annotated[str, typer.Argument(help="model")],
    name: Annotated[str, typer.Argument()],
    namespace: NamespaceOption = "default",
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Conditions, revisions, traffic, replicas and recent events of a Model."""
    _check_resource(resource)
    client = ControlClient(server)
    model = client.get(namespace, name)
    text = _describe(model, client.events(namespace, name))
    source = model.metadata.labels.get(SOURCE_LABEL)
    if source is not None:
        text = text.replace(
            "\nConditions:", "\n" + _git_source(server, source) + "\nConditions:", 1
        )
    typer.echo(text)


def _git_source(server: str, name: str) -> str:
    """The git source that manages a Model, as ``gitops status`` shows it, in brief."""
    try:
        reply = httpx.get(f"{server.rstrip('/')}/gitops", timeout=10, headers=credentials())
        reply.raise_for_status()
        found = [s for s in reply.json()["items"] if s["name"] == name]
    except (httpx.HTTPError, ValueError, KeyError):
        found = []
    if not found:
        return f"GitOps:       source {name} (its status is not available here)"
    source = found[0]
    applied = (source["lastAppliedCommit"] or "-")[:12]
    lines = [
        f"GitOps:       source {name}: {source['url']} branch {source['branch']} "
        f"path {source['path']}",
        f"              applied {applied}; {source['result']}: {source['message']}",
    ]
    return "\n".join(lines)


def _describe(model: Model, events: list[dict[str, Any]]) -> str:
    meta, spec, status = model.metadata, model.spec, model.status
    ready = condition(status.conditions, READY)
    pin = f" (sha256 {spec.source.sha256[:12]}…)" if spec.source.sha256 else ""
    protocols = ", ".join(p.value for p in spec.protocols or [])
    lines = [
        f"Name:         {meta.name}",
        f"Namespace:    {meta.namespace}",
        f"Labels:       {','.join(f'{k}={v}' for k, v in meta.labels.items()) or '<none>'}",
        f"Created:      {meta.creation_timestamp} ({age(meta.creation_timestamp)} ago)",
        f"Generation:   {meta.generation} (observed {status.observed_generation})",
        f"URL:          {status.url or '<none>'}",
        f"Source:       {spec.source.uri}{pin}",
        f"Format:       {spec.format.value} ({spec.task.value}; protocols {protocols})",
        f"Scaling:      {spec.scaling.min_replicas}..{spec.scaling.max_replicas} replicas, "
        f"target {spec.scaling.aim:g} {SCALING_UNITS[spec.scaling.metric]} each",
        f"Rollout:      {spec.rollout.strategy.value}",
        f"Ready:        {ready.status.value + ' (' + ready.reason + ')' if ready else 'Unknown'}",
        f"Replicas:     {replicas(model)} ready",
        "Conditions:",
    ]
    rows = [[c.type, c.status.value, c.reason, c.message] for c in status.conditions]
    lines += ["  " + ln for ln in table(["TYPE", "STATUS", "REASON", "MESSAGE"], rows).splitlines()]
    lines.append("Revisions:")
    rows = [
        [r.name, f"{r.traffic}%", f"{r.ready_replicas}/{r.replicas}", _role(r.name, model)]
        for r in status.revisions
    ]
    lines += ["  " + ln for ln in table(["NAME", "TRAFFIC", "READY", ""], rows).splitlines()]
    lines.append("Events:")
    rows = [[e["type"], e["reason"], e["lastTimestamp"], e["message"]] for e in events[-15:]]
    lines += (
        ["  " + ln for ln in table(["TYPE", "REASON", "TIME", "MESSAGE"], rows).splitlines()]
        if rows
        else ["  <none>"]
    )
    return "\n".join(lines)


def _role(revision: str, model: Model) -> str:
    return "stable" if revision == model.status.stable_revision else ""


def delete(
    resource: Annotated[str | None, typer.Argument(help="model")] = None,
    name: Annotated[str | None, typer.Argument()] = None,
    file: Annotated[str | None, typer.Option("--file", "-f")] = None,
    namespace: NamespaceOption = "default",
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Delete Models by name or by manifest; their replicas drain and stop."""
    client = ControlClient(server)
    if file is not None:
        targets = [(m.metadata.namespace, m.metadata.name) for m in _read_manifests(file)]
    elif resource is not None and name is not None:
        _check_resource(resource)
        targets = [(namespace, name)]
    else:
        raise CliError(
            "nothing to delete",
            hint="modelplane delete model NAME, or -f FILE",
            exit_code=EXIT_USAGE,
        )
    for ns, target in targets:
        client.delete(ns, target)
        typer.echo(f'model.modelplane.io "{target}" deleted')


def logs(
    resource: Annotated[str, typer.Argument(help="model")],
    name: Annotated[str, typer.Argument()],
    revision: Annotated[str | None, typer.Option(help="Only this revision's replicas.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    tail: Annotated[int, typer.Option(help="Lines per replica.")] = 200,
    namespace: NamespaceOption = "default",
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Print the logs of a Model's replicas."""
    _check_resource(resource)
    client = ControlClient(server)
    seen = client.logs(namespace, name, revision, tail)
    typer.echo(seen, nl=False)
    while follow:
        time.sleep(1)
        now = client.logs(namespace, name, revision, tail)
        typer.echo(now[len(seen) :] if now.startswith(seen) else now, nl=False)
        seen = now
