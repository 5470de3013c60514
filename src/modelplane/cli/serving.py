"""``modelplane serve``: run one model revision in this process (what a replica runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelplane.api import (
    Model,
    ModelFormat,
    ModelSpec,
    ObjectMeta,
    Protocol,
    Source,
    Task,
    revision_digest,
)
from modelplane.api.adapters import ADAPTERS_FILE_ENV
from modelplane.api.manifests import load_model_file, load_models
from modelplane.artifacts import FetchSettings
from modelplane.cli.caching import (
    DEFAULT_LIMITS,
    CacheDirOption,
    CacheSizeOption,
    MaxBytesOption,
    MaxFilesOption,
    limits_from,
    size_option,
)
from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.cli.observing import AccessLogOption, AccessLogSampleOption, LogFormat, observed
from modelplane.runtime.server import Runtime, RuntimeOptions, run
from modelplane.telemetry.access import AccessLogSettings


def serve(
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A Model manifest (YAML or JSON).")
    ] = None,
    manifest: Annotated[
        str | None,
        typer.Option(
            envvar="MODELPLANE_MANIFEST",
            help="A Model manifest's text, instead of --file (how a pod on Kubernetes gets it).",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Which Model of a multi-document file; or the model name.")
    ] = None,
    uri: Annotated[str | None, typer.Option(help="Artifact URI, instead of a manifest.")] = None,
    model_format: Annotated[
        ModelFormat | None, typer.Option("--format", help="Artifact format, with --uri.")
    ] = None,
    task: Annotated[Task, typer.Option(help="What the model does, with --uri.")] = (
        Task.CLASSIFICATION
    ),
    sha256: Annotated[str | None, typer.Option(help="Pinned digest, with --uri.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    model_version: Annotated[
        str | None, typer.Option(help="Version reported by the v2 API; default: digest prefix.")
    ] = None,
    artifact: Annotated[
        Path | None,
        typer.Option(
            help="Serve the artifact at this path, fetched and verified already (by "
            "modelplane fetch in a pod's init container), instead of fetching the source."
        ),
    ] = None,
    cache_dir: CacheDirOption = None,
    cache_size: CacheSizeOption = None,
    adapters_file: Annotated[
        Path | None,
        typer.Option(
            envvar=ADAPTERS_FILE_ENV,
            help="The LoRA adapters to serve now (JSON: adapters, maxLoaded), read again as it "
            "changes; default: the manifest's spec.adapters.",
        ),
    ] = None,
    max_artifact_files: MaxFilesOption = DEFAULT_LIMITS.max_files,
    max_artifact_bytes: MaxBytesOption = "1Ti",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    log_format: LogFormat = "json",
    access_log: AccessLogOption = True,
    access_log_sample: AccessLogSampleOption = 1.0,
) -> None:
    """Serve one model over the Open Inference Protocol v2 until interrupted."""
    access = AccessLogSettings(access_log, access_log_sample)
    with observed("modelplane-runtime", log_level, log_format, access):
        model = _model_from(file, manifest, name, uri, model_format, task, sha256)
        version = model_version or revision_digest(model.spec)[:12]
        fetching = FetchSettings(limits=limits_from(max_artifact_files, max_artifact_bytes))
        options = RuntimeOptions(
            host=host, port=port, model_version=version, cache_dir=cache_dir,
            cache_size=size_option(cache_size, "--cache-size"), fetching=fetching,
            artifact=artifact, adapters_file=adapters_file,
            log_level=log_level, access_log=access,
        )  # fmt: skip
        runtime = Runtime(model, options)
        base = f"http://{_display_host(host)}:{port}"
        protocols = model.spec.protocols or []
        where = [f"{base}/v2/models/{model.metadata.name}"] if Protocol.V2 in protocols else []
        where += [f"{base}/v1 (OpenAI API)"] if Protocol.OPENAI in protocols else []
        ready = f"serving {model.metadata.name} at {' and '.join(where)}"
        runtime.on_ready.append(lambda: print(ready, flush=True))
        code = run(runtime)
    raise typer.Exit(code)


def _model_from(
    file: Path | None,
    manifest: str | None,
    name: str | None,
    uri: str | None,
    model_format: ModelFormat | None,
    task: Task,
    sha256: str | None,
) -> Model:
    if file is not None and uri is not None:
        raise CliError("give either --file or --uri, not both", exit_code=EXIT_USAGE)
    if file is not None:
        return pick_model(load_model_file(file), name, str(file))
    if manifest is not None and uri is None:
        return pick_model(load_models(manifest, "MODELPLANE_MANIFEST"), name, "the manifest")
    if uri is None or model_format is None:
        raise CliError(
            "nothing to serve",
            hint="modelplane serve -f model.yaml, or --uri file://model.onnx --format onnx",
            exit_code=EXIT_USAGE,
        )
    return Model(
        metadata=ObjectMeta(name=name or _stem(uri)),
        spec=ModelSpec(source=Source(uri=uri, sha256=sha256), format=model_format, task=task),
    )


def pick_model(models: list[Model], name: str | None, file: str) -> Model:
    if name is not None:
        for model in models:
            if model.metadata.name == name:
                return model
        raise CliError(f"{file} has no Model named {name!r}", exit_code=EXIT_USAGE)
    if len(models) != 1:
        names = ", ".join(m.metadata.name for m in models)
        raise CliError(
            f"{file} holds {len(models)} Models ({names})",
            hint="pick one with --name",
            exit_code=EXIT_USAGE,
        )
    return models[0]


def _stem(uri: str) -> str:
    return Path(uri.rstrip("/")).stem.lower().replace("_", "-") or "model"


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - display only
