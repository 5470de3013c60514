"""``modelplane rollout``: follow and steer a model's rollout.

Commands reach the controller as the ``modelplane.io/rollout-command`` annotation
(``promote:<time>`` …), so they work the same through the control API, kubectl on a cluster or
a git commit; the controller acts on each value once and records it in
``status.rollout.lastCommand``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from modelplane.api import COMMIT_TIME_ANNOTATION, ROLLOUT_COMMAND_ANNOTATION, ModelSpec
from modelplane.cli.client import DEFAULT_SERVER, ControlClient
from modelplane.cli.errors import CliError
from modelplane.cli.output import table

ServerOption = Annotated[
    str, typer.Option("--server", help="Control API URL.", envvar="MODELPLANE_SERVER")
]
NamespaceOption = Annotated[str, typer.Option("--namespace", "-n", help="Namespace.")]
NameArgument = Annotated[str, typer.Argument(help="Model name.")]
ROLLOUT_REASONS = (
    "RevisionCreated", "RolloutStarted", "TrafficShifted", "RolloutStepPassed", "RolloutPromoted",
    "AnalysisFailed", "CanaryFailing", "RolloutAborted", "RolloutPaused", "RolloutResumed",
)  # fmt: skip


def status(
    name: NameArgument,
    namespace: NamespaceOption = "default",
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Phase, step, traffic split and the last analysis against its thresholds."""
    model = ControlClient(server).get(namespace, name)
    state = model.status.rollout
    split = ", ".join(f"{r.name} {r.traffic}%" for r in model.status.revisions if r.traffic) or "-"
    lines = [
        f"Model:     {namespace}/{name} ({model.spec.rollout.strategy.value})",
        f"Stable:    {model.status.stable_revision or '-'}",
        f"Canary:    {model.status.canary_revision or '-'}",
        f"Traffic:   {split}",
    ]
    if state is None:
        lines.append("Phase:     no rollout yet")
    else:
        steps = len(model.spec.rollout.steps)
        lines += [
            f"Phase:     {state.phase.value} (step {state.step + 1}/{steps})",
            f"Message:   {state.message}",
        ]
        analysis = state.last_analysis
        if analysis is not None:
            lines.append(f"Analysis:  {'passed' if analysis.passed else analysis.message}")
            rows = [
                [
                    m.name,
                    "-" if m.value is None else f"{m.value:.4g}",
                    f"{m.threshold:.4g}",
                    "ok" if m.passed else "FAIL",
                ]
                for m in analysis.metrics
            ]
            if rows:
                lines += [
                    "  " + ln
                    for ln in table(["METRIC", "VALUE", "THRESHOLD", ""], rows).splitlines()
                ]
    typer.echo("\n".join(lines))


def _command(verb: str, name: str, namespace: str, server: str) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    ControlClient(server).annotate(namespace, name, {ROLLOUT_COMMAND_ANNOTATION: f"{verb}:{stamp}"})
    typer.echo(f"rollout of {namespace}/{name}: {verb} requested")


STEERING = {
    "promote": "Skip the remaining steps: the canary becomes stable now.",
    "abort": "Roll back now: all traffic to the stable revision.",
    "pause": "Hold the rollout at its current step.",
    "resume": "Continue a paused rollout; the current step starts over.",
}


def _steering_command(app: typer.Typer, verb: str, summary: str) -> None:
    def command(
        name: NameArgument,
        namespace: NamespaceOption = "default",
        server: ServerOption = DEFAULT_SERVER,
    ) -> None:
        _command(verb, name, namespace, server)

    command.__doc__ = summary
    app.command(verb)(command)


def undo(
    name: NameArgument,
    to_revision: Annotated[str | None, typer.Option(help="Revision to return to.")] = None,
    namespace: NamespaceOption = "default",
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Return to an earlier revision's spec, through the same rollout path as any change."""
    client = ControlClient(server)
    model = client.get(namespace, name)
    revisions = client.revisions(namespace, name)
    stable = model.status.stable_revision
    numbers = {r["name"]: r["number"] for r in revisions}
    if to_revision is None:
        # The revision that served before the stable one: never a canary that was rolled back.
        below = [r for r in revisions if stable and r["number"] < numbers.get(stable, 0)
                 and r.get("promoted")]  # fmt: skip
        if not below:
            raise CliError(
                f"{name} has no earlier revision that served all traffic before "
                f"{stable or 'its first'}",
                hint="name one with --to-revision; see: modelplane rollout history",
            )
        target = below[-1]
    else:
        named = [r for r in revisions if r["name"] == to_revision]
        if not named:
            raise CliError(
                f"{name} has no revision {to_revision!r}", hint="see: modelplane rollout history"
            )
        target = named[0]
    # The objective is the service's, not the revision's: an undo keeps today's.
    kept = {"slo": model.spec.slo, "adapters": model.spec.adapters}  # no part of a revision
    model.spec = ModelSpec.model_validate(target["spec"]).model_copy(update=kept)
    model.metadata.resource_version = None
    # An undo is a change of its own, made now: the last commit's time is not its start.
    model.metadata.annotations.pop(COMMIT_TIME_ANNOTATION, None)
    client.replace_spec(model)
    typer.echo(f"rollout of {namespace}/{name}: returning to the spec of {target['name']}")


def history(
    name: NameArgument,
    namespace: NamespaceOption = "default",
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Each revision, and every rollout decision with its reason."""
    client = ControlClient(server)
    model = client.get(namespace, name)
    roles = {model.status.stable_revision: "stable", model.status.canary_revision: "canary"}
    rows = [
        [r["name"], r["created"], r["digest"][:12], roles.get(r["name"], "")]
        for r in client.revisions(namespace, name)
    ]
    typer.echo(table(["REVISION", "CREATED", "DIGEST", "ROLE"], rows))
    decisions = [
        [e["lastTimestamp"], e["reason"], e["message"]]
        for e in client.events(namespace, name)
        if e["reason"] in ROLLOUT_REASONS
    ]
    if decisions:
        typer.echo("\n" + table(["TIME", "DECISION", "REASON"], decisions))


def build() -> typer.Typer:
    """The ``modelplane rollout`` command group."""
    app = typer.Typer(help="Follow and steer rollouts.", no_args_is_help=True)
    app.command()(status)
    for verb, summary in STEERING.items():
        _steering_command(app, verb, summary)
    app.command()(undo)
    app.command()(history)
    return app
