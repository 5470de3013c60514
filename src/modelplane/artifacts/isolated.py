"""Fetching in a child process that alone holds the source's credentials.

A Model whose source names ``credentials`` is fetched by ``modelplane fetch`` run as a child of
the replica (or of the control plane, to resolve a moving reference) with the secret's variables
added to its environment: the model's own process, which runs code from the artifact, never
sees them. On a cluster the same command runs as the pod's init container.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from modelplane.api import Model
from modelplane.api.exits import EXIT_ARTIFACT_UNAVAILABLE
from modelplane.artifacts.paths import Limits
from modelplane.errors import ArtifactError, ArtifactUnreachableError

RESOLVE_SECONDS = 120.0  # a tag, alias or branch is one or two calls to the store


@dataclass(frozen=True)
class ChildResult:
    source: str  # the immutable reference
    path: Path | None = None
    digest: str | None = None


def fetch_in_child(
    model: Model,
    env: dict[str, str],
    cache_dir: Path,
    base_dir: Path,
    limits: Limits,
    resolve: bool = False,
) -> ChildResult:
    """Run ``modelplane fetch`` for ``model`` with ``env`` added to this process's environment;
    its artifact errors come back as :class:`ArtifactError` with the child's message."""
    manifest = json.dumps(model.model_dump(mode="json", by_alias=True, exclude_none=True))
    command = [
        sys.executable, "-m", "modelplane", "fetch",
        "--cache-dir", str(cache_dir), "--base-dir", str(base_dir),
        "--max-artifact-files", str(limits.max_files),
        "--max-artifact-bytes", str(limits.max_bytes),
    ]  # fmt: skip
    if resolve:
        command.append("--resolve")
    try:
        done = subprocess.run(
            command,
            env={**os.environ, **env, "MODELPLANE_MANIFEST": manifest},
            capture_output=True,
            text=True,
            timeout=RESOLVE_SECONDS if resolve else None,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ArtifactUnreachableError(
            f"resolving {model.spec.source.uri} took over {RESOLVE_SECONDS:.0f} s; check that "
            f"its store is up"
        ) from exc
    if done.returncode != 0:
        raise _failure(done.returncode, done.stderr, model.spec.source.uri)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    path = found.get("path")
    return ChildResult(found["source"], Path(path) if path else None, found.get("digest"))


def _failure(code: int, stderr: str, uri: str) -> ArtifactError:
    said = [line for line in stderr.splitlines() if line.startswith("error: ")]
    message = said[-1].removeprefix("error: ") if said else f"modelplane fetch exited with {code}"
    if code == EXIT_ARTIFACT_UNAVAILABLE:
        return ArtifactError(message)
    return ArtifactError(f"fetching {uri} failed: {message}")
