"""Where an ``oci://`` source's registry login comes from: the replica's environment, then the
Docker config file that ``oras login``, ``docker login`` and ``podman login`` write.

Only plain logins are read. A credential helper (``credsStore``, ``credHelpers``) is a program
modelplane does not run; when that is all the config holds for a registry, the access-denied
message says so. A :class:`Login` never shows its password, and messages name only where a
login was looked for.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from modelplane.errors import ArtifactError

USERNAME_VARIABLE = "REGISTRY_USERNAME"
PASSWORD_VARIABLE = "REGISTRY_PASSWORD"  # noqa: S105 (a variable's name)
# Docker Hub is written under several names, the oldest being its v1 index URL.
_DOCKER_HUB = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


@dataclass(frozen=True)
class Login:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Logins:
    """What was found for one registry: the login to use, if any, and where it came from."""

    registry: str
    config: Path
    login: Login | None = None
    origin: str = ""  # where the login came from, for messages
    helper: str | None = None  # a credential helper the config names instead of a login

    def looked_at(self) -> str:
        """Where the login was looked for and what was found there, for an access-denied error."""
        where = (
            f"modelplane looks for a login in {USERNAME_VARIABLE} and {PASSWORD_VARIABLE}, else "
            f"for {self.registry} in {self.config} (written by oras login or docker login)"
        )
        if self.login is not None:
            return f"{where}, and used the one from {self.origin}"
        if self.helper is not None:
            return (
                f"{where}, which names only the credential helper {self.helper!r} for it, a "
                f"program modelplane does not run: set {USERNAME_VARIABLE} and "
                f"{PASSWORD_VARIABLE} instead"
            )
        return f"{where}, and found none"


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    directory = os.environ.get("DOCKER_CONFIG")
    return (Path(directory) if directory else Path.home() / ".docker") / "config.json"


def find_logins(registry: str) -> Logins:
    """The login for ``registry`` (``host[:port]``): the environment's, else the Docker
    config's."""
    config = docker_config_path()
    username, password = os.environ.get(USERNAME_VARIABLE), os.environ.get(PASSWORD_VARIABLE)
    if username and password:
        return Logins(
            registry, config, Login(username, password), f"{USERNAME_VARIABLE}/{PASSWORD_VARIABLE}"
        )
    auths, helper = _read_config(config, registry)
    for key, entry in auths.items():
        if _same_registry(key, registry) and isinstance(entry, dict):
            login = _entry_login(entry)
            if login is not None:
                return Logins(registry, config, login, f"the login for {registry} in {config}")
    return Logins(registry, config, helper=helper)


def _read_config(config: Path, registry: str) -> tuple[dict[str, object], str | None]:
    """The config's ``auths`` table and the credential helper it names for ``registry``."""
    try:
        data = json.loads(config.read_bytes())
    except FileNotFoundError:
        return {}, None
    except (OSError, ValueError) as exc:
        raise ArtifactError(
            f"the Docker config {config} cannot be read ({type(exc).__name__}); fix it, or set "
            f"{USERNAME_VARIABLE} and {PASSWORD_VARIABLE} for the registry {registry}"
        ) from exc
    if not isinstance(data, dict):
        return {}, None
    auths = data.get("auths")
    helpers = data.get("credHelpers")
    helper = None
    if isinstance(helpers, dict):
        helper = next((v for k, v in helpers.items() if _same_registry(k, registry)), None)
    store = data.get("credsStore")
    if helper is None and isinstance(store, str):
        helper = store
    return (auths if isinstance(auths, dict) else {}), helper


def _entry_login(entry: dict[str, object]) -> Login | None:
    """``auth`` (base64 of ``user:password``), else ``username`` and ``password``."""
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, colon, password = decoded.partition(":")
        return Login(username, password) if colon and username else None
    user, secret = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(secret, str) and user:
        return Login(user, secret)
    return None


def _same_registry(key: str, registry: str) -> bool:
    """Whether a config key (``host``, ``https://host/v1/``...) names ``registry``."""
    host = urlsplit(key).netloc if "://" in key else key.split("/", 1)[0]
    return host == registry or (host in _DOCKER_HUB and registry in _DOCKER_HUB)
