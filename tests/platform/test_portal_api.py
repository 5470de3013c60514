"""What the portal needs from the control API, usable by anyone: metrics over time per revision,
dry runs that store nothing and say whether a change makes a revision, checked query
parameters, and an OpenAPI description that matches the routes served and the replies sent."""

from __future__ import annotations

import itertools
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from modelplane.apiserver.key_store import SqliteKeyStore
from modelplane.apiserver.metric_history import MetricHistory
from modelplane.apiserver.openapi import document
from modelplane.apiserver.quotas import SqliteQuotaStore
from modelplane.apiserver.routes import control_routes
from modelplane.apiserver.server import ControlApi
from modelplane.backends.local.backup import write_backup
from modelplane.backends.local.store import SqliteStore
from modelplane.backends.local.usage import UsageRecorder, UsageStore
from modelplane.gateway.quotas import Quotas
from modelplane.gitops.sources import GitSources
from tests.platform.conftest import API, METRICS, Platform, manifest, wait_for
from tests.traffic import BODY

ONE = f"{API}/namespaces/default/models"


def iris_document(tmp_path: Path, iris_dir: Path, name: str) -> dict[str, Any]:
    path = manifest(tmp_path / f"{name}.yaml", name, iris_dir / "model.onnx")
    found: dict[str, Any] = yaml.safe_load(path.read_text())
    return found


def conforms(described: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    """``instance`` is valid against ``schema``, whose refs point into the description."""
    rooted = {**schema, "components": described["components"]}
    jsonschema.Draft202012Validator(rooted).validate(instance)


@pytest.fixture(scope="module")
def described(platform: Platform) -> dict[str, Any]:
    reply = httpx.get(f"{platform.api}/openapi.json")
    assert reply.status_code == 200
    found: dict[str, Any] = reply.json()
    return found


def reply_schema(described: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    responses = described["paths"][path][method]["responses"]
    ok = next(v for k, v in responses.items() if k.startswith("2"))
    found: dict[str, Any] = ok["content"]["application/json"]["schema"]
    return found


def test_metrics_count_every_request_per_revision_over_time(
    platform: Platform, iris_dir: Path, tmp_path: Path, described: dict[str, Any]
) -> None:
    platform.cli(
        "apply", "-f", str(manifest(tmp_path / "m.yaml", "measured", iris_dir / "model.onnx"))
    )
    platform.wait_condition("measured", "Ready", "True", "RevisionReady")
    series_url = f"{platform.api}{METRICS}/namespaces/default/models/measured"

    def points() -> list[dict[str, Any]]:
        revisions = httpx.get(series_url).json()["revisions"]
        return [p for r in revisions if r["revision"] == "measured-r1" for p in r["points"]]

    wait_for(lambda: len(points()) >= 1, "a first sample", 30)  # the counters' base is taken
    sent = 40
    with httpx.Client(timeout=30) as client:
        for _ in range(sent):
            assert client.post(f"{platform.gateway}/v2/models/measured/infer", json=BODY).is_success

    def counted() -> float:
        found = points()
        # Each point's rate times its interval is the requests in that interval.
        return sum(
            p["requestsPerSecond"] * (p["time"] - q["time"]) for q, p in itertools.pairwise(found)
        )

    wait_for(lambda: round(counted()) == sent, f"{sent} requests in the series", 30)
    busy = [p for p in points() if p["requestsPerSecond"] > 0]
    assert all(p["errorRate"] == 0 and p["p99Ms"] > 0 and p["p50Ms"] <= p["p99Ms"] for p in busy)
    assert {(p["readyReplicas"], p["traffic"]) for p in busy} == {(1, 100)}
    series = httpx.get(series_url).json()
    conforms(described, reply_schema(described, METRICS + "/namespaces/{namespace}/models/{name}"),
             series)  # fmt: skip

    latest = httpx.get(f"{platform.api}{METRICS}/models").json()
    conforms(described, reply_schema(described, METRICS + "/models"), latest)
    assert any(m["name"] == "measured" for m in latest["items"])

    assert httpx.delete(f"{platform.api}{ONE}/measured").status_code == 200
    gone = httpx.get(series_url)
    assert gone.status_code == 404
    assert gone.json()["reason"] == "NotFound"


def test_a_dry_run_checks_everything_stores_nothing_and_names_the_revision(
    platform: Platform, iris_dir: Path, tmp_path: Path
) -> None:
    document = iris_document(tmp_path, iris_dir, "rehearsed")
    version = httpx.get(f"{platform.api}{API}/models").json()["metadata"]["resourceVersion"]
    created = httpx.post(f"{platform.api}{ONE}?dryRun=All", json=document)
    assert created.status_code == 201
    assert created.json()["metadata"]["generation"] == 1
    digest = created.headers["modelplane-revision-digest"]
    assert len(digest) == 64
    assert httpx.get(f"{platform.api}{ONE}/rehearsed").status_code == 404
    after = httpx.get(f"{platform.api}{API}/models").json()["metadata"]["resourceVersion"]
    assert after == version  # nothing written, no watcher woken

    assert httpx.post(f"{platform.api}{ONE}", json=document).status_code == 201
    platform.wait_condition("rehearsed", "Ready", "True", "RevisionReady")
    served = platform.model("rehearsed")["status"]["revisions"][0]["digest"]
    assert served == digest  # the dry run named the revision that now serves

    def dry_patch(patch: dict[str, Any]) -> httpx.Response:
        return httpx.patch(f"{platform.api}{ONE}/rehearsed?dryRun=All", json=patch,
                           headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip

    before = int(platform.model("rehearsed")["metadata"]["resourceVersion"])
    rescaled = dry_patch({"spec": {"scaling": {"maxReplicas": 3}}})
    after = int(platform.model("rehearsed")["metadata"]["resourceVersion"])
    assert rescaled.status_code == 200
    assert rescaled.headers["modelplane-revision-digest"] == served  # scaling makes no revision
    assert rescaled.json()["metadata"]["generation"] == 2
    # The reply names the stored version (not one it never wrote), so the same object can be
    # written for real next.
    assert before <= int(rescaled.json()["metadata"]["resourceVersion"]) <= after
    rebatched = dry_patch({"spec": {"batching": {"maxBatchSize": 4}}})
    assert rebatched.headers["modelplane-revision-digest"] != served
    assert platform.model("rehearsed")["metadata"]["generation"] == 1

    invalid = dry_patch({"spec": {"batching": {"maxBatchSize": 0}}})
    assert invalid.status_code == 422
    assert [c["field"] for c in invalid.json()["details"]["causes"]] == [
        "spec.batching.maxBatchSize"
    ]
    kept = httpx.delete(f"{platform.api}{ONE}/rehearsed?dryRun=All")
    assert kept.status_code == 200
    assert platform.model("rehearsed")["metadata"]["name"] == "rehearsed"  # still there
    exists = httpx.post(f"{platform.api}{ONE}?dryRun=All", json=document)
    assert exists.status_code == 409
    unknown = httpx.post(f"{platform.api}{ONE}?dryRun=Some", json=document)
    assert unknown.status_code == 422
    assert "use dryRun=All" in unknown.json()["message"]


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/rehearsed/events?limit=lots", "limit='lots'"),
        ("/rehearsed/events?limit=0", "limit='0'"),
        ("/rehearsed/logs?tailLines=-5", "tailLines='-5'"),
        ("?watch=true&timeoutSeconds=soon", "timeoutSeconds='soon'"),
    ],
)
def test_a_bad_query_parameter_is_named_not_a_server_error(
    platform: Platform, path: str, named: str
) -> None:
    reply = httpx.get(f"{platform.api}{ONE}{path}")
    assert reply.status_code == 422
    assert named in reply.json()["message"]


def test_the_description_covers_exactly_the_routes_served(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    keys = SqliteKeyStore(tmp_path / "state.db")
    quotas = SqliteQuotaStore(tmp_path / "state.db")
    usage = UsageStore(tmp_path / "state.db")
    sources = GitSources(tmp_path, "http://127.0.0.1:1", store.record_event, {})
    history = MetricHistory(lambda *_: (0, 0, (1.0,), (0, 0), 0, 0.0), lambda *_: 0)
    app = ControlApi(store, tmp_path).app(
        control_routes(
            store,
            history,
            sources,
            quotas,
            Quotas(),
            keys,
            partial(write_backup, tmp_path),
            UsageRecorder(usage),
        )
    )
    served = {
        (method, route.path)  # type: ignore[attr-defined]
        for route in app.routes
        for method in (route.methods or ())  # type: ignore[attr-defined]
        if method != "HEAD"
    }
    described = {
        (method.upper(), path)
        for path, ops in document(auth=True)["paths"].items()
        for method in ops
    }
    assert served == described
    usage.close()
    store.close()
    keys.close()
    quotas.close()


def test_links_lead_from_what_a_reply_made_to_every_operation_on_it() -> None:
    """OpenAPI links (which Schemathesis's stateful phase follows): each names an operation
    that exists and fills exactly its path parameters from the producer's reply."""
    described = document(auth=True)
    operations = {
        op["operationId"]: path for path, ops in described["paths"].items() for op in ops.values()
    }
    followed: dict[str, set[str]] = {}
    for path, ops in described["paths"].items():
        for method, op in ops.items():
            for reply in op["responses"].values():
                for link in reply.get("links", {}).values():
                    target = operations[link["operationId"]]
                    wanted = {p[1:-1] for p in target.split("/") if p.startswith("{")}
                    assert set(link["parameters"]) == wanted, (path, link)
                    assert all(
                        v.startswith("$response.body#/") for v in link["parameters"].values()
                    )
                    followed.setdefault(f"{method.upper()} {path}", set()).add(target)
    created = followed[f"POST {API}/namespaces/{{namespace}}/models"]
    assert f"{API}/namespaces/{{namespace}}/models/{{name}}/events" in created
    assert "/quotas/{namespace}" in followed["PUT /quotas/{namespace}"]
    assert "/gitops/{name}/sync" in followed["POST /gitops"]
    assert followed["POST /auth/keys"] == {"/auth/keys/{id}"}


def test_the_description_is_served_to_anyone_and_the_portal_page_too(
    platform: Platform, described: dict[str, Any]
) -> None:
    assert described["openapi"].startswith("3.1")
    assert "Model" in described["components"]["schemas"]
    page = httpx.get(f"{platform.api}/")
    assert page.status_code == 200
    assert '<div id="portal"' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert platform.gateway in policy  # "try it" may call the gateway, nothing else
    assert f'data-gateway-url="{platform.gateway}"' in page.text
    script = httpx.get(f"{platform.api}/portal/portal.js")
    assert script.status_code == 200
    assert script.headers["content-encoding"] == "gzip"
    unchanged = httpx.get(
        f"{platform.api}/portal/portal.js", headers={"If-None-Match": script.headers["etag"]}
    )
    assert unchanged.status_code == 304
    assert httpx.get(f"{platform.api}/portal/secrets.txt").status_code == 404
    # The gateway answers the portal's cross-origin requests, and no other origin's.
    allowed = httpx.options(
        f"{platform.gateway}/v2/models/x/infer",
        headers={"Origin": platform.api, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,traceparent"},
    )  # fmt: skip
    assert allowed.headers["access-control-allow-origin"] == platform.api
    for origin in ("http://evil.example", f"http://evil.example:{platform.port}"):
        other = httpx.options(
            f"{platform.gateway}/v2/models/x/infer",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in other.headers
    # Reached by another name, the page names the gateway by that name, and may call it there.
    by_name = f"http://localhost:{platform.port}"
    assert (
        f'data-gateway-url="http://localhost:{platform.gateway_port}"'
        in httpx.get(f"{by_name}/").text
    )
    allowed = httpx.get(
        f"http://localhost:{platform.gateway_port}/v2/health/ready", headers={"Origin": by_name}
    )
    assert allowed.headers["access-control-allow-origin"] == by_name
