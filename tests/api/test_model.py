"""The Model resource: defaults, validation messages, revision identity, manifests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelplane.api import (
    Model,
    Protocol,
    dump_json,
    dump_yaml,
    load_models,
    parse_model,
    revision_digest,
    revision_name,
    to_wire,
)
from modelplane.api.revision import SERVING_FIELDS
from modelplane.errors import SpecError


def document(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "source": {"uri": "file://examples/iris/model.onnx"},
        "format": "onnx",
        "task": "classification",
    }
    base.update(spec)
    return {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "iris"},
        "spec": base,
    }


GATE = {"dataset": "file:///eval.jsonl", "metric": "exactMatch", "threshold": 0.8}


def test_a_scorer_is_named_by_its_function_or_entry_point() -> None:
    for scorer in ("modelplane.scoring:token_f1", "acme.judging:Rubric.score", "acme-rubric"):
        gate = {**GATE, "metric": "scorer", "scorer": scorer}
        model = parse_model(document(rollout={"evaluation": gate}))
        assert model.spec.rollout.evaluation is not None
        assert model.spec.rollout.evaluation.scorer == scorer


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_model(doc)
    return [str(p) for p in caught.value.problems] or [str(caught.value)]


def test_minimal_model_gets_defaults() -> None:
    model = parse_model(document())
    spec = model.spec
    assert model.metadata.namespace == "default"
    assert spec.protocols == [Protocol.V2]
    assert spec.scaling.min_replicas == 1
    assert spec.scaling.max_replicas == 4
    assert spec.batching.max_batch_size == 32
    assert spec.rollout.strategy == "Canary"
    assert [s.weight for s in spec.rollout.steps] == [10, 50]
    assert spec.runtime.allow_pickle is False
    assert model.key == "default/iris"


@pytest.mark.parametrize(
    ("task", "fmt", "protocols"),
    [
        ("classification", "onnx", ["v2"]),
        ("regression", "sklearn", ["v2"]),
        ("embedding", "huggingface", ["openai", "v2"]),
        ("chat", "llamacpp", ["openai"]),
        ("text-generation", "vllm", ["openai"]),
    ],
)
def test_protocols_default_from_the_task(task: str, fmt: str, protocols: list[str]) -> None:
    model = parse_model(document(task=task, format=fmt))
    assert [p.value for p in model.spec.protocols or []] == protocols


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"format": "onxx"}, "spec.format: Input should be 'sklearn', 'onnx', 'huggingface'"),
        ({"format": "onxx"}, "(got 'onxx')"),
        ({"task": "chat"}, "format 'onnx' cannot serve task 'chat'; it serves: classification"),
        ({"protocols": ["openai"]}, "protocol 'openai' needs a task of embedding"),
        ({"source": {"uri": "ftp://host/model.onnx"}}, "scheme 'ftp' is not supported"),
        ({"source": {"uri": "s3:///model.onnx"}}, "is not a source of this form: s3://bucket/key"),
        ({"source": {"uri": "oci://registry/Model:1"}}, "oci://registry/repository:tag or"),
        ({"source": {"uri": "models:/iris"}}, "models:/name/version or models:/name@alias"),
        ({"source": {"uri": "hf://org/name/extra"}}, "hf://org/name or hf://org/name@revision"),
        (
            {"source": {"uri": "file://m.onnx", "endpoint": "http://127.0.0.1:9000"}},
            "endpoint is only for s3://, models:/ and hf:// sources",
        ),
        (
            {"source": {"uri": "s3://b/m.onnx", "credentials": {"secret": "Not_A_Name"}}},
            "spec.source.credentials.secret: String should match",
        ),
        (
            {"source": {"uri": "s3://b/m.onnx", "endpoint": "http://key:secret@host"}},
            "spec.source.endpoint: String should match",
        ),
        ({"source": {"uri": "model.onnx"}}, "scheme '(none)' is not supported"),
        (
            {"source": {"uri": "file://m.onnx", "sha256": "abc"}},
            "spec.source.sha256: String should match",
        ),
        (
            {"scaling": {"minReplicas": 5, "maxReplicas": 2}},
            "minReplicas (5) must not exceed maxReplicas (2)",
        ),
        (
            {"scaling": {"minReplicas": -1}},
            "spec.scaling.minReplicas: Input should be greater than or equal to 0",
        ),
        (
            {"rollout": {"steps": [{"weight": 50}, {"weight": 10}]}},
            "step weights must increase strictly, got [50, 10]",
        ),
        (
            {"rollout": {"strategy": "BlueGreen"}},
            "spec.rollout.strategy: Input should be 'Canary' or 'Immediate'",
        ),
        (
            {"batching": {"maxBatchSize": 0}},
            "spec.batching.maxBatchSize: Input should be greater than or equal to 1",
        ),
        ({"resources": {"memory": "lots"}}, "spec.resources.memory: String should match"),
        ({"replicas": 3}, "spec.replicas: Extra inputs are not permitted"),
        ({"runtime": {"allowPickle": True}}, "runtime.allowPickle needs source.sha256"),
        (
            {"rollout": {"evaluation": {**GATE, "metric": "scorer"}}},
            "spec.rollout.evaluation: metric scorer needs scorer: the function judging each answer",
        ),
        (
            {"rollout": {"evaluation": {**GATE, "scorer": "acme.judging:rubric"}}},
            "scorer 'acme.judging:rubric' is given with metric exactMatch: set metric: scorer",
        ),
        (
            {"rollout": {"evaluation": {**GATE, "metric": "scorer", "scorer": "acme judging"}}},
            "spec.rollout.evaluation.scorer: 'acme judging' is neither package.module:function",
        ),
        (
            {"rollout": {"evaluation": {**GATE, "metric": "scorer", "scorer": "acme:"}}},
            "'acme:' is neither package.module:function (e.g. modelplane.scoring:contains) nor "
            "the name of an entry point in group modelplane.scorers",
        ),
    ],
)
def test_invalid_specs_name_the_field_value_and_rule(spec: dict[str, Any], expected: str) -> None:
    found = problems(document(**spec))
    assert any(expected in p for p in found), found


def test_missing_fields_and_bad_names() -> None:
    doc = document()
    del doc["spec"]["format"]
    assert "spec.format: Field required" in problems(doc)
    doc = document()
    doc["metadata"]["name"] = "Iris_Model"
    assert any(p.startswith("metadata.name: String should match pattern") for p in problems(doc))
    doc["metadata"]["name"] = "x" * 53
    assert any("at most 52 characters" in p for p in problems(doc))


def test_wrong_kind_or_version_is_refused() -> None:
    doc = document()
    doc["apiVersion"] = "modelplane.io/v1"
    assert "expected apiVersion: modelplane.io/v1alpha1 and kind: Model" in problems(doc)[0]


def test_scaling_and_rollout_edits_keep_the_revision() -> None:
    base = revision_digest(parse_model(document()).spec)
    assert revision_digest(parse_model(document(scaling={"maxReplicas": 9})).spec) == base
    assert revision_digest(parse_model(document(rollout={"strategy": "Immediate"})).spec) == base
    spelled_out = document(
        batching={"maxBatchSize": 32, "maxDelayMs": 2}, protocols=["v2"], telemetry={"env": {}}
    )
    assert revision_digest(parse_model(spelled_out).spec) == base


@pytest.mark.parametrize(
    "change",
    [
        {"source": {"uri": "file://examples/iris/model-v2.onnx"}},
        {"source": {"uri": "file://examples/iris/model.onnx", "sha256": "a" * 64}},
        {"source": {"uri": "s3://models/iris/", "endpoint": "http://127.0.0.1:9000"}},
        {"resources": {"cpu": "2"}},
        {"batching": {"maxBatchSize": 8}},
        {"runtime": {"parameters": {"intraOpThreads": "1"}}},
        {"task": "regression"},
        {"telemetry": {"env": {"OTEL_TRACES_SAMPLER": "always_off"}}},
    ],
)
def test_serving_changes_make_a_new_revision(change: dict[str, Any]) -> None:
    base = revision_digest(parse_model(document()).spec)
    assert revision_digest(parse_model(document(**change)).spec) != base


@pytest.mark.parametrize(
    "uri",
    [
        "oci://registry.example:5000/team/iris:v1",
        "oci://ghcr.io/team/iris@sha256:" + "a" * 64,
        "oci://localhost/iris",
        "models:/iris/3",
        "models:/iris@champion",
        "hf://sentence-transformers/all-MiniLM-L6-v2",
        "hf://gpt2@main",
        "hf://org/name@" + "0" * 40,
        "s3://bucket/prefix/",
    ],
)
def test_every_source_kind_is_accepted(uri: str) -> None:
    source = parse_model(document(source={"uri": uri})).spec.source
    assert source.uri == uri


def test_later_source_fields_left_out_rename_no_revision() -> None:
    """``source.endpoint``, ``source.credentials`` and ``runtime.maxLoadedAdapters`` came after
    revisions existed: a spec without them keeps the digest it had before they were added."""
    spec = parse_model(document()).spec
    served = spec.model_dump(mode="json", by_alias=True, include=set(SERVING_FIELDS))
    served["source"].pop("endpoint")
    served["source"].pop("credentials")
    served["runtime"].pop("maxLoadedAdapters")
    canonical = json.dumps(served, sort_keys=True, separators=(",", ":"))
    assert revision_digest(spec) == hashlib.sha256(canonical.encode()).hexdigest()


def test_revision_names() -> None:
    assert revision_name("iris", 3) == "iris-r3"


def test_multi_document_yaml_round_trip(tmp_path: Path) -> None:
    text = """
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata: {name: a, namespace: team-a, labels: {tier: gold}}
spec: {source: {uri: "file://a.onnx"}, format: onnx, task: classification}
---
---
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata: {name: b}
spec: {source: {uri: "https://models.example/b.onnx"}, format: onnx, task: regression}
"""
    models = load_models(text, "models.yaml")
    assert [m.key for m in models] == ["team-a/a", "default/b"]
    assert load_models(dump_yaml(models)) == models
    assert load_models(dump_json(models)) == models
    assert load_models(dump_json(models[0])) == models[:1]
    wire = to_wire(models[0], include_status=False)
    assert "status" not in wire
    assert wire["spec"]["scaling"]["targetInFlight"] == 4


def test_a_listing_is_a_list_however_many_it_holds() -> None:
    one = parse_model(document())
    for found in ([], [one], [one, one]):
        listing = json.loads(dump_json(found))
        assert (listing["apiVersion"], listing["kind"]) == ("v1", "List")
        assert [item["metadata"]["name"] for item in listing["items"]] == ["iris"] * len(found)
        assert yaml.safe_load(dump_yaml(found)) == listing
    assert json.loads(dump_json(one))["kind"] == "Model"
    assert yaml.safe_load(dump_yaml(one))["kind"] == "Model"


def test_lists_of_models_are_read_as_kubectl_reads_them() -> None:
    model = document()
    other = {**document(), "metadata": {"name": "other"}}
    as_kubectl = {"apiVersion": "v1", "kind": "List", "items": [model, other]}
    as_our_api = {"apiVersion": "modelplane.io/v1alpha1", "kind": "ModelList", "items": [model]}
    text = yaml.safe_dump_all([as_kubectl, document(), as_our_api])
    assert [m.metadata.name for m in load_models(text)] == ["iris", "other", "iris", "iris"]
    assert load_models(json.dumps({**as_kubectl, "items": []})) == []


@pytest.mark.parametrize(
    ("listing", "fragment"),
    [
        (
            {"apiVersion": "v1", "kind": "List"},
            "in.yaml: a List needs items, a list of Models; got",
        ),
        (
            {"apiVersion": "v1", "kind": "List", "items": [document(), document(format="tf")]},
            "in.yaml item 2: invalid Model 'iris'",
        ),
        (
            {"apiVersion": "v1", "kind": "List", "items": [{"kind": "Pod"}]},
            "in.yaml item 1: unsupported resource apiVersion=None kind='Pod'",
        ),
    ],
)
def test_bad_lists_say_which_item(listing: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_models(json.dumps(listing), "in.yaml")
    assert fragment in str(caught.value)


def test_errors_in_multi_document_files_say_which_document() -> None:
    text = """
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata: {name: fine}
spec: {source: {uri: "file://a.onnx"}, format: onnx, task: classification}
---
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata: {name: broken}
spec:
  source: {uri: "file://a.onnx"}
  format: onnx
  task: classification
  scaling: {maxReplicas: 0}
"""
    with pytest.raises(SpecError) as caught:
        load_models(text, "models.yaml")
    assert "models.yaml document 2: invalid Model 'broken'" in str(caught.value)
    assert "spec.scaling.maxReplicas" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("key: [unclosed", "not valid YAML or JSON"),
        ("- a\n- b\n", "document 1 is a list, expected a mapping"),
    ],
)
def test_unreadable_manifests(text: str, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_models(text)
    assert fragment in str(caught.value)


def test_status_round_trips_with_conditions() -> None:
    doc = document()
    doc["status"] = {
        "observedGeneration": 3,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "AllReplicasReady",
                "message": "2/2 replicas ready",
                "lastTransitionTime": "2026-11-27T10:00:00Z",
                "observedGeneration": 3,
            }
        ],
        "revisions": [{"name": "iris-r2", "replicas": 2, "readyReplicas": 2, "traffic": 90}],
        "stableRevision": "iris-r2",
        "rollout": {"phase": "Progressing", "step": 1},
    }
    model = Model.model_validate(doc)
    assert model.status.conditions[0].reason == "AllReplicasReady"
    assert to_wire(model)["status"]["conditions"][0]["lastTransitionTime"] == "2026-11-27T10:00:00Z"
    doc["status"]["conditions"][0]["status"] = "Maybe"
    with pytest.raises(SpecError):
        parse_model(doc)


def test_telemetry_takes_only_otel_variables() -> None:
    env = {"OTEL_SERVICE_NAME": "iris", "PATH": "/tmp", "otel_sdk_disabled": "true"}
    (problem,) = problems(document(telemetry={"env": env}))
    assert problem.startswith(
        "spec.telemetry.env: only OTEL_* variables (upper case) may be set here, "
        "not PATH, otel_sdk_disabled"
    )
    parsed = parse_model(document(telemetry={"env": {"OTEL_SERVICE_NAME": "iris"}}))
    assert parsed.spec.telemetry.env == {"OTEL_SERVICE_NAME": "iris"}


def test_metadata_that_is_not_a_mapping_is_named_not_a_crash() -> None:
    doc = document()
    doc["metadata"] = [None, None]  # found by fuzzing the control API: was a server error
    assert any(p.startswith("metadata:") for p in problems(doc))


CHAT = {"source": {"uri": "file://tiny-chat.gguf"}, "format": "llamacpp", "task": "chat"}


@pytest.mark.parametrize(
    ("scaling", "expected"),
    [
        (
            {"metric": "kvCache", "target": 1.5},
            "target 1.5 is out of range for metric kvCache: the share of a replica's KV cache "
            "in use, more than 0 and at most 1",
        ),
        ({"metric": "kvCache", "target": 0}, "spec.scaling.target: Input should be greater than 0"),
        (
            {"metric": "waiting", "target": -2},
            "spec.scaling.target: Input should be greater than 0",
        ),
        ({"metric": "waiting"}, "metric waiting needs target: waiting requests per replica"),
        ({"metric": "tokensPerSecond"}, "metric tokensPerSecond needs target: generated tokens"),
        (
            {"metric": "inFlight", "target": 2.5},
            "target 2.5 is out of range for metric inFlight: requests in flight per replica, a "
            "whole number from 1 to 10000",
        ),
        (
            {"target": 8, "targetInFlight": 3},
            "target (8) and targetInFlight (3) disagree; set one of them",
        ),
        ({"metric": "queue", "target": 1}, "spec.scaling.metric: Input should be 'inFlight'"),
    ],
)
def test_a_scaling_target_out_of_range_for_its_metric_is_refused(
    scaling: dict[str, Any], expected: str
) -> None:
    found = problems(document(**CHAT, scaling=scaling))
    assert any(expected in p for p in found), found


def test_reported_metrics_need_an_engine_that_reports_them() -> None:
    (found,) = problems(document(scaling={"metric": "waiting", "target": 1}))
    assert "scaling.metric waiting is reported by the engines of generative models" in found
    assert "not task 'classification'; use inFlight" in found
    hf = {**CHAT, "format": "huggingface"}
    (found,) = problems(document(**hf, scaling={"metric": "kvCache", "target": 0.5}))
    assert "format 'huggingface' runs one sequence at a time" in found
    assert parse_model(document(**hf, scaling={"metric": "waiting", "target": 1}))


def test_stored_scaling_specs_read_as_before_and_target_is_in_flights_other_name() -> None:
    """A spec written before ``metric`` and ``target`` existed reads as scaling on in-flight
    requests with its targetInFlight; ``target`` under inFlight sets the same number, and the
    stored form reads back unchanged."""
    before = parse_model(document(scaling={"maxReplicas": 6, "targetInFlight": 3})).spec.scaling
    assert (before.metric.value, before.aim, before.target) == ("inFlight", 3.0, None)
    written = parse_model(document(scaling={"target": 8})).spec.scaling
    assert (written.target_in_flight, written.aim) == (8, 8.0)
    stored = written.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert parse_model(document(scaling=stored)).spec.scaling == written
    saturation = parse_model(document(**CHAT, scaling={"metric": "kvCache", "target": 0.7}))
    assert (saturation.spec.scaling.aim, saturation.spec.scaling.target_in_flight) == (0.7, 4)
    assert revision_digest(saturation.spec) == revision_digest(parse_model(document(**CHAT)).spec)
