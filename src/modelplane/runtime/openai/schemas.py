"""The request bodies of the OpenAI API that modelplane serves, as the official client sends them.

Unknown fields are ignored, as OpenAI-compatible servers do, so that newer clients keep working;
fields whose feature is not offered here (``n`` above 1, tools, log probabilities) are refused
with a message naming them rather than silently dropped.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelplane.errors import InvalidRequestError
from modelplane.runtime.generation import ChatMessage

B = TypeVar("B", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: Annotated[str, Field(min_length=1)]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class _Generating(_Body):
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] = 1.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    n: Annotated[int, Field(ge=1, le=1)] = 1
    seed: int | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: Literal[False, None] = None
    user: str | None = None

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatCompletionRequest(_Generating):
    messages: Annotated[list[Message], Field(min_length=1)]
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    tools: Annotated[list[Any], Field(max_length=0)] | None = None

    def conversation(self) -> list[ChatMessage]:
        # "developer" is the newer name of "system"; chat templates know only the older one.
        return [
            ChatMessage("system" if m.role == "developer" else m.role, m.text())
            for m in self.messages
        ]

    def requested_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens else self.max_tokens


class CompletionRequest(_Generating):
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)]
    max_tokens: Annotated[int, Field(ge=1)] | None = 16  # the API's own default
    echo: Literal[False] = False
    best_of: Annotated[int, Field(ge=1, le=1)] | None = None
    suffix: None = None

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


Text = Annotated[str, Field(min_length=1)]


class EmbeddingRequest(_Body):
    input: Text | Annotated[list[Text], Field(min_length=1, max_length=2048)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        """One message for an empty text, alone or in a list, before the types say it twice."""
        texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        if any(t == "" for t in texts):
            raise ValueError("input must not contain empty strings")
        return value

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


def parse(kind: type[B], body: bytes) -> B:
    """Decode and validate a request body; any problem is a 400 naming the field."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidRequestError("request body must be a JSON object")
    try:
        return kind.model_validate(document)
    except ValidationError as exc:
        errors = _relevant(exc.errors(), document)
        first = errors[0]
        param = ".".join(str(p) for p in first["loc"] if not _is_tag(p)) or None
        message = _message(first)
        more = len(errors) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise InvalidRequestError(f"{param}: {message}{suffix}", param=param) from exc


_TAG = re.compile(
    r"^(str|constrained-str|int|float|bool|none|(list|dict|literal|function-\w+)\[.*\])$"
)


def _is_tag(part: object) -> bool:
    """pydantic names the member of a union it tried (``str``, ``list[str]``) in an error's
    location; it is not a field a client wrote."""
    return isinstance(part, str) and _TAG.match(part) is not None


def _relevant(errors: list[Any], document: dict[str, Any]) -> list[Any]:
    """Of a union's errors, those of the member matching what the client sent: for ``[]`` the
    list's complaint, not that it is no string."""

    def fits(error: Any) -> bool:
        loc = error["loc"]
        if len(loc) < 2 or not _is_tag(loc[1]) or loc[0] not in document:
            return True
        given, tag = document[loc[0]], loc[1]
        if tag in ("str", "constrained-str"):
            return isinstance(given, str)
        if tag.startswith("list["):
            return isinstance(given, list)
        return True

    return [e for e in errors if fits(e)] or errors


_UNSUPPORTED = {
    "n": "only n=1 is supported",
    "best_of": "only best_of=1 is supported",
    "tools": "tool calling is not supported by this server",
    "logprobs": "log probabilities are not supported by this server",
    "echo": "echo is not supported by this server",
    "suffix": "suffix is not supported by this server",
}


def _message(error: Any) -> str:
    field = str(error["loc"][0]) if error["loc"] else ""
    if field in _UNSUPPORTED and error["type"] in {
        "less_than_equal",
        "too_long",
        "literal_error",
        "none_required",
    }:
        return _UNSUPPORTED[field]
    return str(error["msg"])
