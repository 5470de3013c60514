"""``modelplane fetch``: get a Model's artifact into the cache, and say where it is.

The step that holds a fetch's secrets and nothing else: a replica whose source names
``credentials`` runs it as a child with them, a pod runs it as its init container with the
Secret, the control plane runs it with ``--resolve`` to pin a new revision's moving reference.
It prints one JSON object on stdout: ``source`` (the immutable reference), ``path`` and
``digest`` (absent with ``--resolve``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from modelplane.api.exits import EXIT_ARTIFACT_UNAVAILABLE
from modelplane.api.manifests import load_model_file, load_models
from modelplane.artifacts import Fetcher, FetchSettings, artifact_cache, default_cache_dir
from modelplane.artifacts.credentials import credentials_from_directory
from modelplane.cli.caching import (
    DEFAULT_LIMITS,
    CacheDirOption,
    MaxBytesOption,
    MaxFilesOption,
    limits_from,
)
from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.cli.serving import pick_model
from modelplane.errors import ArtifactError


def fetch(
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A Model manifest (YAML or JSON).")
    ] = None,
    manifest: Annotated[
        str | None,
        typer.Option(envvar="MODELPLANE_MANIFEST", help="A Model manifest's text, instead."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Which Model of a multi-document file.")] = None,
    resolve: Annotated[
        bool,
        typer.Option(
            help="Only resolve the source's moving reference (a tag, an alias, a branch) to "
            "the immutable one, fetching nothing."
        ),
    ] = False,
    link: Annotated[
        Path | None,
        typer.Option(help="Also make this path a symbolic link to the fetched artifact."),
    ] = None,
    cache_dir: CacheDirOption = None,
    max_artifact_files: MaxFilesOption = DEFAULT_LIMITS.max_files,
    max_artifact_bytes: MaxBytesOption = "1Ti",
    base_dir: Annotated[Path, typer.Option(help="Where relative file:// paths start.")] = Path(),
    node_cache: Annotated[
        str | None,
        typer.Option(
            help="The node cache agent's URL: asked before the store, handed what the store "
            "gave (on a cluster, the node's modelplane-node-cache Service)."
        ),
    ] = None,
    secret_dir: Annotated[
        Path | None,
        typer.Option(
            help="A Secret mounted as a volume: its keys become this fetch's environment "
            "(a pod's init container gets the Model's source.credentials this way)."
        ),
    ] = None,
) -> None:
    """Fetch a Model's artifact into the artifact cache (or only pin its reference)."""
    if secret_dir is not None:
        scratch = Path(tempfile.mkdtemp(prefix="modelplane-fetch-"))
        os.environ.update(credentials_from_directory(secret_dir, scratch))
    if file is not None:
        model = pick_model(load_model_file(file), name, str(file))
    elif manifest is not None:
        model = pick_model(load_models(manifest, "MODELPLANE_MANIFEST"), name, "the manifest")
    else:
        hint = "modelplane fetch -f model.yaml"
        raise CliError("nothing to fetch", hint=hint, exit_code=EXIT_USAGE)
    limits = limits_from(max_artifact_files, max_artifact_bytes)
    settings = FetchSettings(limits=limits, node_cache=node_cache)
    cache = artifact_cache(cache_dir or default_cache_dir())
    try:
        with Fetcher(cache, base_dir.resolve(), settings) as fetcher:
            source = fetcher.pin(model.spec.source)
            if resolve:
                typer.echo(json.dumps({"source": source.uri}))
                return
            fetched = fetcher.fetched(source)
    except ArtifactError as exc:
        raise CliError(str(exc), exit_code=EXIT_ARTIFACT_UNAVAILABLE) from exc
    if link is not None:
        link.unlink(missing_ok=True)
        link.symlink_to(fetched.path)
    result = {"source": source.uri, "path": str(fetched.path), "digest": fetched.digest}
    typer.echo(json.dumps(result))
