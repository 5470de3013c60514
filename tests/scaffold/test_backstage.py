"""Backstage: the catalog entities of every model repository against Backstage's published
schemas, the Software Template against the scaffolder's, and the template's skeleton, rendered
by nunjucks as the scaffolder renders it, against what ``modelplane init`` writes."""

from __future__ import annotations

import filecmp
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from modelplane.api import ModelFormat, Protocol, Task
from modelplane.api.meta import DNS_1035_LABEL, DNS_LABEL, MAX_NAME_LENGTH
from modelplane.api.model import FORMAT_TASKS
from modelplane.cli.repository_templates import TEMPLATES
from modelplane.cli.scaffold import URI_CHARACTERS
from modelplane.gateway import openapi
from tests.scaffold.conftest import COMBINATIONS, NAMESPACE, Repository
from tests.scaffold.tools import ROOT, SKELETON, TEMPLATE, backstage_validator, render_skeleton

PACKAGE_TEMPLATES = ROOT / "src" / "modelplane" / "cli" / "templates" / TEMPLATES


def _openapi_validator(peers: Path) -> jsonschema.Draft202012Validator:
    schema = json.loads((peers / "openapi" / "3.1.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def _served(path: str, described: dict[str, Any]) -> set[str]:
    """The methods the gateway's own description has for a concrete path."""
    for template, operations in described["paths"].items():
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path):
            return set(operations)
    return set()


def test_catalog_entities_follow_backstages_schemas(
    repositories: list[Repository], peers: Path
) -> None:
    validators = {kind: backstage_validator(peers, kind) for kind in ("Component", "API")}
    for repository in repositories:
        entities = repository.documents("catalog-info.yaml")
        for entity in entities:
            errors = [e.message for e in validators[str(entity["kind"])].iter_errors(entity)]
            assert errors == [], (repository.name, entity["kind"], errors)
            assert entity["metadata"]["annotations"]["modelplane.io/model"] == repository.model.key


def test_components_provide_an_api_per_protocol_the_model_speaks(
    repositories: list[Repository], peers: Path
) -> None:
    described = openapi.document(auth=False, max_request_bytes=1024)
    valid_openapi = _openapi_validator(peers)
    for repository in repositories:
        component, *apis = repository.documents("catalog-info.yaml")
        names = [api["metadata"]["name"] for api in apis]
        assert component["spec"]["providesApis"] == names
        protocols = repository.model.spec.protocols or []
        assert names == [f"{repository.name}-{p.value}" for p in Protocol if p in protocols]
        for api in apis:
            definition = yaml.safe_load(api["spec"]["definition"])
            errors = [e.message for e in valid_openapi.iter_errors(definition)]
            assert errors == [], (repository.name, errors)
            for path, operations in definition["paths"].items():
                assert set(operations) <= _served(path, described), (repository.name, path)
                assert repository.model.key in path or path.startswith("/v1/")


def test_the_template_follows_the_scaffolders_schema(peers: Path) -> None:
    template = yaml.safe_load(TEMPLATE.read_text())
    errors = [e.message for e in backstage_validator(peers, "Template").iter_errors(template)]
    assert errors == []
    for page in template["spec"]["parameters"]:
        jsonschema.Draft7Validator.check_schema(page)
    fetch = template["spec"]["steps"][0]["input"]
    assert fetch["url"] == "./skeleton"
    assert fetch["values"]["dataset"].endswith('+ "/evaluation.jsonl" }}')
    assert [s["action"] for s in template["spec"]["steps"]] == [
        "fetch:template", "publish:github", "catalog:register"
    ]  # fmt: skip


def test_the_templates_form_takes_what_init_takes() -> None:
    """The same names and namespaces, the formats, and for each format the tasks it serves."""
    form = yaml.safe_load(TEMPLATE.read_text())["spec"]["parameters"][0]
    fields = form["properties"]
    assert fields["name"]["pattern"] == DNS_1035_LABEL
    assert fields["name"]["maxLength"] == MAX_NAME_LENGTH
    assert fields["namespace"]["pattern"] == DNS_LABEL
    assert fields["source"]["pattern"] == f"^{URI_CHARACTERS.pattern}$"
    assert sorted(fields["format"]["enum"]) == sorted(f.value for f in ModelFormat)
    validator = jsonschema.Draft7Validator(form)
    for model_format in ModelFormat:
        for task in Task:
            answers = {"name": "m", "format": model_format.value, "task": task.value,
                       "namespace": "default"}  # fmt: skip
            serves = task in FORMAT_TASKS.get(model_format, frozenset(Task))
            assert validator.is_valid(answers) == serves, (model_format, task)


def test_the_skeleton_is_the_templates_init_renders() -> None:
    """One source of truth: scripts/backstage-skeleton copies them."""
    comparison = filecmp.dircmp(PACKAGE_TEMPLATES, SKELETON)
    pending = [comparison]
    while pending:
        level = pending.pop()
        _, mismatch, errors = filecmp.cmpfiles(level.left, level.right, level.common_files,
                                               shallow=False)  # fmt: skip
        assert (level.left_only, level.right_only, mismatch, errors) == ([], [], [], []), (
            f"{SKELETON} is not a copy of {PACKAGE_TEMPLATES}: run scripts/backstage-skeleton"
        )
        pending.extend(level.subdirs.values())


def test_backstage_scaffolds_what_init_writes(repositories: list[Repository], peers: Path) -> None:
    """For every format and task, with the template's defaults for the artifact and owner."""
    values = yaml.safe_load(TEMPLATE.read_text())["spec"]["steps"][0]["input"]["values"]
    runs = [{"name": r.name, "format": r.format.value, "task": r.task.value,
             "namespace": NAMESPACE} for r in repositories]  # fmt: skip
    assert len(runs) == len(COMBINATIONS)
    for repository, scaffolded in zip(
        repositories, render_skeleton(peers, values, runs), strict=True
    ):
        assert scaffolded == repository.files(), repository.name
