"""Reading and writing ``Model`` manifests: YAML or JSON, one or many documents per file.

A listing is written as kubectl writes one, a ``List`` whose ``items`` are the Models, so scripts
read ``.items[]`` however many matched; reading accepts that ``List`` (and the control API's
``ModelList``) back, so ``get -o yaml`` output can be applied as it is.

Validation errors are turned into :class:`~modelplane.errors.SpecError` with one problem per field,
each naming the field path as written (``spec.scaling.minReplicas``), the value given and what is
allowed, so the CLI, the control API and the operator report the same precise message.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from modelplane.api.model import API_VERSION, KIND, Model
from modelplane.api.status import ModelStatus
from modelplane.errors import FieldProblem, SpecError

_MAX_VALUE_CHARS = 60

# kubectl's generic list, and the list kind of our own API: both carry Models as ``items``.
LIST_API_VERSION, LIST_KIND = "v1", "List"
_LIST_TYPES = ((LIST_API_VERSION, LIST_KIND), (API_VERSION, f"{KIND}List"))


# libyaml's C dumper when PyYAML was built with it: the same output, many times faster.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def problems_from(
    exc: ValidationError, prefix: str = "", secret: Collection[str] = ()
) -> list[FieldProblem]:
    """Translate pydantic's errors into field problems with wire (camelCase) paths; the value
    given is said too, but never that of a field in ``secret``."""
    problems = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"])
        path = f"{prefix}.{path}" if prefix and path else (prefix or path)
        message = error["msg"].removeprefix("Value error, ")
        shown = error["type"] not in ("missing", "model_type") and path not in secret
        if shown and "input" in error:
            given = repr(error["input"])
            if len(given) > _MAX_VALUE_CHARS:
                given = given[:_MAX_VALUE_CHARS] + "…"
            message = f"{message} (got {given})"
        problems.append(FieldProblem(path, message))
    return problems


def parse_model(document: Mapping[str, Any], where: str = "") -> Model:
    """Validate one decoded document as a Model; raise SpecError naming every bad field."""
    what = f"{where}: " if where else ""
    if not isinstance(document, Mapping):
        raise SpecError(f"{what}expected a mapping, got {type(document).__name__}")
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if kind != KIND or api_version != API_VERSION:
        raise SpecError(
            f"{what}unsupported resource apiVersion={api_version!r} kind={kind!r}; "
            f"expected apiVersion: {API_VERSION} and kind: {KIND} (or a {LIST_KIND} of them)"
        )
    try:
        return Model.model_validate(document)
    except ValidationError as exc:
        metadata = document.get("metadata")
        name = metadata.get("name", "?") if isinstance(metadata, Mapping) else "?"
        raise SpecError(f"{what}invalid Model {name!r}", problems_from(exc)) from exc


def load_documents(text: str, source: str = "<input>") -> list[dict[str, Any]]:
    """Decode every non-empty YAML (or JSON) document in ``text``."""
    try:
        documents = [d for d in yaml.load_all(text, Loader=_LOADER) if d is not None]
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML or JSON: {exc}") from exc
    for index, document in enumerate(documents, start=1):
        if not isinstance(document, dict):
            raise SpecError(
                f"{source}: document {index} is a {type(document).__name__}, expected a mapping"
            )
    return documents


def load_models(text: str, source: str = "<input>") -> list[Model]:
    """Parse a multi-document manifest; every document must be a valid Model or a List of them."""
    documents = load_documents(text, source)
    many = len(documents) > 1
    return [
        model
        for i, doc in enumerate(documents, start=1)
        for model in _models_in(doc, f"{source} document {i}" if many else source)
    ]


def is_model_list(document: object) -> bool:
    """Whether a decoded document is a List of Models: kubectl's ``List`` or our ``ModelList``."""
    if not isinstance(document, Mapping):
        return False
    return (document.get("apiVersion"), document.get("kind")) in _LIST_TYPES


def _models_in(document: Mapping[str, Any], where: str) -> list[Model]:
    """The Models a document holds: itself, or the items of a List."""
    if not is_model_list(document):
        return [parse_model(document, where)]
    items = document.get("items")
    if not isinstance(items, list):
        raise SpecError(
            f"{where}: a {document['kind']} needs items, a list of Models; "
            f"got {type(items).__name__}"
        )
    return [parse_model(item, f"{where} item {i}") for i, item in enumerate(items, start=1)]


def load_model_file(path: Path) -> list[Model]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror}") from exc
    return load_models(text, str(path))


def to_wire(model: Model, *, include_status: bool = True) -> dict[str, Any]:
    """The JSON-ready form, camelCase, without unset optional noise."""
    exclude = None if include_status else {"status"}
    return model.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=exclude)


def status_wire(status: ModelStatus) -> dict[str, Any]:
    """A status as written to the API: what decides whether a write is needed at all."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def list_wire(models: Iterable[Model], *, include_status: bool = True) -> dict[str, Any]:
    """kubectl's ``List`` of Models: a listing keeps this shape whether none, one or many
    matched, so a script reads ``.items[]`` without guessing."""
    items = [to_wire(m, include_status=include_status) for m in models]
    return {"apiVersion": LIST_API_VERSION, "kind": LIST_KIND, "items": items}


def _wire(found: Model | Iterable[Model], include_status: bool) -> dict[str, Any]:
    # A Model is checked first: pydantic models are iterable (over their fields).
    if isinstance(found, Model):
        return to_wire(found, include_status=include_status)
    return list_wire(found, include_status=include_status)


def dump_yaml(found: Model | Iterable[Model], *, include_status: bool = True) -> str:
    """One Model as its manifest, or several as a ``List``."""
    return yaml.dump(_wire(found, include_status), Dumper=_DUMPER, sort_keys=False)


def dump_json(found: Model | Iterable[Model], *, include_status: bool = True) -> str:
    """One Model as its manifest, or several as a ``List``."""
    return json.dumps(_wire(found, include_status), indent=2)
