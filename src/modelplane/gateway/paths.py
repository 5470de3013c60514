"""Parsing v2 model paths as the gateway accepts them: ``name`` or ``namespace/name``.

/v2/models/{name}[/versions/{v}][/ready|/infer]
/v2/models/{namespace}/{name}[/versions/{v}][/ready|/infer]
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIONS = ("ready", "infer")
PREFIX = "/v2/models/"


@dataclass(frozen=True)
class ModelPath:
    key: str  # namespace/name
    name: str
    version: str | None
    action: str  # "", "ready" or "infer"

    def upstream(self) -> str:
        """The path on a runtime, which serves its model under the bare name."""
        path = f"{PREFIX}{self.name}"
        if self.version is not None:
            path += f"/versions/{self.version}"
        return f"{path}/{self.action}" if self.action else path


def parse(path: str) -> ModelPath | None:
    if not path.startswith(PREFIX):
        return None
    parts = [p for p in path[len(PREFIX) :].split("/") if p]
    if not parts:
        return None
    if len(parts) >= 2 and parts[1] != "versions" and parts[1] not in ACTIONS:
        namespace, name, rest = parts[0], parts[1], parts[2:]
    else:
        namespace, name, rest = "default", parts[0], parts[1:]
    version = None
    if rest[:1] == ["versions"]:
        if len(rest) < 2:
            return None
        version, rest = rest[1], rest[2:]
    if len(rest) > 1 or (rest and rest[0] not in ACTIONS):
        return None
    return ModelPath(f"{namespace}/{name}", name, version, rest[0] if rest else "")
