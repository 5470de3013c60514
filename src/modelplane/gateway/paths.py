"""Where a request goes: the model it names, as the gateway accepts it (``name`` or
``namespace/name``), and the path on a runtime.

/v2/models/{name}[/versions/{v}][/ready|/infer]
/v2/models/{namespace}/{name}[/versions/{v}][/ready|/infer]
/v1/chat/completions, /v1/completions, /v1/embeddings   (the model in the body's "model")

and the methods each path takes; the gateway's own paths (health, metadata, metrics, its
description) are listed here too, so a path and its methods are known in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIONS = ("ready", "infer")
PREFIX = "/v2/models/"
OPENAI = "openai"  # the action of an OpenAI API request
OPENAI_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings"})
OWN_PATHS = frozenset({"/v2", "/v2/health/live", "/v2/health/ready", "/metrics", "/openapi.json"})
MODELS = "/v1/models"  # the OpenAI API's model list; one model at /v1/models/{id}
READ = ("GET", "HEAD")
SEND = ("POST",)


@dataclass(frozen=True)
class ModelPath:
    key: str  # namespace/name
    name: str
    version: str | None
    action: str  # "", "ready", "infer" or "openai"
    path: str = ""  # an OpenAI API path, sent on as it came
    prefix: bytes | None = None  # a generative request's prompt prefix, for prefix balancing
    blocks: tuple[bytes, ...] = ()  # its prompt's chained block hashes, for engine balancing
    adapter: str | None = None  # the LoRA adapter of the model (key, name) the request names

    @property
    def namespace(self) -> str:
        return self.key.split("/", 1)[0]

    def upstream(self) -> str:
        """The path on a runtime, which serves its model under the bare name."""
        if self.action == OPENAI:
            return self.path
        path = f"{PREFIX}{self.name}"
        if self.version is not None:
            path += f"/versions/{self.version}"
        return f"{path}/{self.action}" if self.action else path


def generates(target: ModelPath) -> bool:
    """Whether the request asks a model to generate text (chat or completions)."""
    return target.action == OPENAI and target.path != "/v1/embeddings"


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


def openai(
    path: str, model: str, prefix: bytes | None = None, blocks: tuple[bytes, ...] = ()
) -> ModelPath:
    """The target of an OpenAI API request for ``model`` (``name`` or ``namespace/name``)."""
    namespace, _, name = model.rpartition("/")
    return ModelPath(f"{namespace or 'default'}/{name}", name, None, OPENAI, path, prefix, blocks)


def methods(path: str) -> tuple[str, ...] | None:
    """The methods ``path`` takes, or None if the gateway serves nothing there."""
    if path in OWN_PATHS or path == MODELS or path.startswith(MODELS + "/"):
        return READ
    if path in OPENAI_PATHS:
        return SEND
    target = parse(path)
    if target is None:
        return None
    return SEND if target.action == "infer" else READ
