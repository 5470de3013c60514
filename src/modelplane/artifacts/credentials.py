"""``source.credentials`` in embedded mode: a file of ``KEY=value`` lines, named by the secret,
under the credentials directory (``$MODELPLANE_CREDENTIALS``, else
``~/.config/modelplane/credentials``). Its variables are given to the process that fetches and
to nothing else; the file must be readable by its owner only, as ssh insists for its keys."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from modelplane.api import Source
from modelplane.errors import ArtifactAccessDeniedError


def credentials_dir() -> Path:
    configured = os.environ.get("MODELPLANE_CREDENTIALS")
    if configured:
        return Path(configured)
    home = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return home / "modelplane" / "credentials"


def credentials_env(source: Source, directory: Path | None = None) -> dict[str, str]:
    """The variables ``source.credentials`` names; empty when it names none."""
    if source.credentials is None:
        return {}
    name = source.credentials.secret
    path = (directory or credentials_dir()) / name
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise ArtifactAccessDeniedError(
            f"credentials {name!r} for {source.uri} not found: create {path} with KEY=value "
            f"lines ({type(exc).__name__})"
        ) from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ArtifactAccessDeniedError(
            f"credentials file {path} may be read by others: chmod 600 {path}"
        )
    return _parse(text, path)


def _parse(text: str, path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.removeprefix("export ").partition("=")
        key = key.strip()
        if not equals or not key.isidentifier():
            # The line may hold a secret: say where it is, never what it says.
            raise ArtifactAccessDeniedError(f"{path}, line {number}: expected KEY=value")
        found[key] = value.strip().strip("'\"")
    return found


def credentials_from_directory(directory: Path, scratch: Path) -> dict[str, str]:
    """The variables of a Kubernetes Secret mounted as a volume at ``directory`` (one file per
    key). A ``kubernetes.io/dockerconfigjson`` Secret's ``.dockerconfigjson`` becomes the
    ``config.json`` of a Docker configuration directory made under ``scratch``, which registry
    clients read through ``DOCKER_CONFIG``."""
    found: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith("..") or not path.is_file():
            continue  # the kubelet's own entries (..data, timestamped directories)
        if path.name == ".dockerconfigjson":
            config = scratch / "docker"
            config.mkdir(mode=0o700, parents=True, exist_ok=True)
            (config / "config.json").write_bytes(path.read_bytes())
            found["DOCKER_CONFIG"] = str(config)
        elif path.name.isidentifier():
            found[path.name] = path.read_text().strip()
    return found
