"""The ``modelplane`` entry point: builds the typer app and turns errors into one clear line."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from modelplane import __version__
from modelplane.cli import (
    auth,
    backups,
    caching,
    chatting,
    evaluating,
    fetching,
    gateway,
    gitops,
    inference,
    install,
    models,
    node_cache,
    operator,
    platform,
    quotas,
    releases,
    resources,
    rollouts,
    scaffold,
    serving,
    top,
    usage,
)
from modelplane.cli.errors import EXIT_USAGE, report
from modelplane.errors import ModelplaneError


def _version(value: bool) -> None:
    if value:
        typer.echo(f"modelplane {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="modelplane",
        help="Declare a model, serve it behind one gateway, roll it out safely.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    @app.callback()
    def root(
        version: Annotated[
            bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
        ] = False,
        debug: Annotated[bool, typer.Option(help="Show tracebacks on errors.")] = False,
    ) -> None:
        """modelplane: an open platform for AI inference."""

    app.command()(platform.up)
    app.command()(models.apply)
    app.command()(models.get)
    app.command()(models.describe)
    app.command()(models.delete)
    app.command()(models.logs)
    app.command()(inference.infer)
    app.command()(chatting.chat)
    app.command()(top.top)
    app.command()(releases.releases)
    app.command()(usage.usage)
    app.command()(evaluating.evaluate)
    app.command()(backups.backup)
    app.command()(backups.restore)
    app.add_typer(rollouts.build(), name="rollout")
    app.add_typer(gitops.build(), name="gitops")
    app.add_typer(auth.build(), name="auth")
    app.add_typer(quotas.build(), name="quota")
    app.add_typer(caching.build(), name="cache")
    app.command()(gitops.promote)
    app.command()(serving.serve)
    app.command()(fetching.fetch)
    app.command("node-cache")(node_cache.node_cache)
    app.command()(scaffold.init)
    app.command()(resources.validate)
    app.command()(resources.schema)
    app.command("crd")(resources.crd_command)
    app.command()(operator.operator)
    app.command()(gateway.gateway)
    app.command()(install.install)
    return app


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        result = build_app()(args, standalone_mode=False)
    except ModelplaneError as exc:
        if debug:
            raise
        return report(exc)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return 130
    except typer.TyperException as exc:  # usage errors: unknown option, bad value
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        return int(getattr(exc, "exit_code", EXIT_USAGE))
    return result if isinstance(result, int) else 0
