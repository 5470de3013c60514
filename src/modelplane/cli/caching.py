"""``modelplane cache ls|prune``: the artifact cache on this machine, and the cache options that
``up`` and ``serve`` share (``up`` hands them to every replica it starts)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from modelplane.artifacts import (
    Limits,
    artifact_cache,
    default_cache_dir,
    format_size,
    parse_size,
)
from modelplane.cli.errors import EXIT_USAGE, CliError

CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        help="The artifact cache shared by replicas; default: $MODELPLANE_CACHE, else "
        "~/.cache/modelplane."
    ),
]
CacheSizeOption = Annotated[
    str | None,
    typer.Option(
        help="Bound the artifact cache (20Gi, 500Mi): least recently used artifacts no replica "
        "uses are evicted past it. Default: unbounded."
    ),
]
MaxFilesOption = Annotated[
    int, typer.Option(help="Refuse an artifact directory of more files than this.")
]
MaxBytesOption = Annotated[str, typer.Option(help="Refuse an artifact larger than this (1Ti).")]
DEFAULT_LIMITS = Limits()


def size_option(text: str | None, option: str) -> int | None:
    """The bytes of a size option, or a usage error that names the option."""
    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise CliError(f"{option}: {exc}", exit_code=EXIT_USAGE) from exc


def limits_from(max_files: int, max_bytes: str) -> Limits:
    size = size_option(max_bytes, "--max-artifact-bytes")
    assert size is not None  # the option has a default
    return Limits(max_files=max_files, max_bytes=size)


def replica_cache_options(cache_dir: Path | None, cache_size: str | None) -> tuple[str, ...]:
    """The ``modelplane serve`` options that give every replica ``up`` starts the same cache;
    a bad size is a usage error of ``up`` now rather than a failure of every replica later."""
    size_option(cache_size, "--cache-size")
    options = ("--cache-dir", str((cache_dir or default_cache_dir()).resolve()))
    return options + (("--cache-size", cache_size) if cache_size is not None else ())


def build() -> typer.Typer:
    app = typer.Typer(help="The artifact cache that replicas on this machine share.")
    app.command("ls")(list_entries)
    app.command("prune")(prune)
    return app


def list_entries(cache_dir: CacheDirOption = None) -> None:
    """List cached artifacts, most recently used first."""
    cache = artifact_cache(cache_dir or default_cache_dir())
    entries = sorted(cache.entries(), key=lambda e: -e.last_used)
    rows = [("DIGEST", "SIZE", "LAST USED", "IN USE", "SOURCE")]
    rows += [
        (e.digest[:16], format_size(e.size), _ago(e.last_used),
         "yes" if cache.in_use(e.digest) else "no", e.uri)
        for e in entries
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        typer.echo("   ".join([*cells, row[-1]]))
    total = sum(e.size for e in entries)
    typer.echo(f"{len(entries)} artifacts, {format_size(total)} in {cache.root}")


def prune(
    size: Annotated[
        str,
        typer.Option(help="Keep at most this much (20Gi); 0 evicts every artifact not in use."),
    ] = "0",
    cache_dir: CacheDirOption = None,
) -> None:
    """Evict least recently used artifacts that no replica uses, and interrupted downloads."""
    cache = artifact_cache(cache_dir or default_cache_dir())
    evicted = cache.prune(size_option(size, "--size"))
    for entry in evicted:
        typer.echo(f"evicted {entry.digest[:16]} ({format_size(entry.size)}) {entry.uri}")
    dropped = cache.prune_partial()
    if dropped:
        typer.echo(f"dropped {len(dropped)} interrupted downloads")
    freed = sum(e.size for e in evicted)
    typer.echo(f"freed {format_size(freed)}; {len(cache.entries())} artifacts remain")


def _ago(then: float) -> str:
    seconds = max(0, int(time.time() - then))
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{seconds // length}{unit} ago"
    return f"{seconds}s ago"
