"""``modelplane backup`` and ``modelplane restore``: the embedded platform's state in one file,
and back.

A backup of a running platform is asked of its control API (``GET /backup``, admin): the
platform copies its own database in one read transaction while it keeps serving, with no second
process opening the files under it. ``--state-dir`` reads a stopped platform's directory
instead. Either way the file is read back and checked before it is kept. A restore needs the
platform stopped: it takes the state directory's lock, checks the whole backup, and only then
swaps the files (``backends/local/restoring.py``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from modelplane.backends.local.backup import Backup, unpack, write_backup
from modelplane.backends.local.restoring import restore as swap_in
from modelplane.backends.local.state_lock import StateLock
from modelplane.cli.client import DEFAULT_SERVER, ControlClient
from modelplane.cli.errors import CliError
from modelplane.cli.models import ServerOption
from modelplane.errors import StateError


def backup(
    file: Annotated[Path, typer.Argument(help="Where to write the backup (a .tar.gz).")],
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="Read a stopped platform's state directory instead of asking the running "
            "platform's control API."
        ),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Back up the embedded platform's state (Models with their rollouts, revisions, events,
    API keys, quotas, git sources) into FILE, while it serves."""
    if not file.parent.is_dir():
        raise CliError(f"cannot write {file}: there is no directory {file.parent}")
    partial = file.with_name(f".{file.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            if state_dir is None:
                ControlClient(server).download("/backup", out)
            else:
                hint = "it runs: leave out --state-dir to back it up through its control API"
                with _locked(state_dir, hint):
                    write_backup(state_dir, out)
        checked = _checked(partial, f"{file} was not written")
        os.replace(partial, file)
    finally:
        partial.unlink(missing_ok=True)
    typer.echo(f"backed up {checked.summary()} (taken {checked.taken}, schema version "
               f"{checked.schema_version}) to {file}")  # fmt: skip


def restore(
    file: Annotated[Path, typer.Argument(help="A backup written by modelplane backup.")],
    state_dir: Annotated[
        Path, typer.Option(help="The state directory of the platform (stopped) to restore into.")
    ] = Path(".modelplane"),
) -> None:
    """Replace a stopped platform's state with FILE's, once all of FILE is checked."""
    if not file.is_file():
        raise CliError(f"no backup at {file}")
    stop = f"stop it (Ctrl-C), run restore again, then: modelplane up --state-dir {state_dir}"
    with (
        _locked(state_dir, stop),
        tempfile.TemporaryDirectory(dir=state_dir, prefix=".restore-") as staging,
    ):
        restored = _checked(file, f"nothing in {state_dir} was changed", Path(staging))
        aside = swap_in(restored, state_dir)
    typer.echo(f"restored {restored.summary()} (taken {restored.taken}) into {state_dir}")
    if aside is not None:
        typer.echo(f"the state it replaced is in {aside}")
    typer.echo(f"start it with: modelplane up --state-dir {state_dir}")


@contextmanager
def _locked(state_dir: Path, hint: str) -> Iterator[None]:
    """Hold the state directory's lock: no platform runs on it meanwhile."""
    lock = StateLock(state_dir)
    try:
        lock.acquire()
    except StateError as exc:
        raise CliError(str(exc), hint=hint) from exc
    try:
        yield
    finally:
        lock.release()


def _checked(archive: Path, hint: str, into: Path | None = None) -> Backup:
    """The backup read back and checked, unpacked ``into`` a directory (a scratch one if
    None)."""
    try:
        if into is not None:
            return unpack(archive, into)
        with tempfile.TemporaryDirectory() as scratch:
            return unpack(archive, Path(scratch))
    except StateError as exc:
        raise CliError(str(exc), hint=hint) from exc
