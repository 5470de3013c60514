"""The OpenAPI 3.1 description of the embedded control API, served as ``/openapi.json``.

Clients, the portal and API fuzzers read it. The request and resource schemas come from the
pydantic types that validate them, so they cannot drift from the code; the operations are listed
here, and a test holds that list equal to the routes the platform serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelplane.api import Model
from modelplane.api.meta import DNS_LABEL
from modelplane.api.openapi import (
    COMPONENTS,
    STRING,
    Schema,
    json_reply,
    parameter,
    path_parameter,
    ref,
    reply,
)
from modelplane.api.openapi import document as describe
from modelplane.api.quotas import QuotaSpec
from modelplane.apiserver.git_webhook import MAX_BODY
from modelplane.apiserver.http import REVISION_DIGEST_HEADER
from modelplane.apiserver.keys import KeyRequest
from modelplane.apiserver.metric_history import METRICS_PREFIX
from modelplane.apiserver.releases import RELEASES_PREFIX
from modelplane.apiserver.server import MERGE_PATCH, PREFIX
from modelplane.apiserver.usage import USAGE_PREFIX
from modelplane.gitops.sync import GitSourceSpec
from modelplane.gitops.webhooks import EVENTS, GITLAB_HEADER, SIGNATURES


def _query(name: str, schema: Schema, about: str) -> Schema:
    return parameter("query", name, schema, about)


def _header(name: str, about: str) -> Schema:
    return parameter("header", name, STRING, about)


# What each path parameter may be: the same rules the types apply to the objects they name.
PATH_PARAMETERS: dict[str, Schema] = {
    "namespace": {"type": "string", "minLength": 1, "maxLength": 63, "pattern": DNS_LABEL},
    "name": {"type": "string", "minLength": 1, "maxLength": 63, "pattern": DNS_LABEL},
    "id": {"type": "string", "pattern": "^[0-9a-f]{12}$"},
}


def _path(name: str) -> Schema:
    return path_parameter(name, PATH_PARAMETERS[name])


SELECTOR = r"^([^,=]+==?[^,]*(,[^,=]+==?[^,]*)*)?$"  # empty: everything, as on Kubernetes
LIST_QUERY = [
    _query("labelSelector", {"type": "string", "pattern": SELECTOR}, "Equality: app=iris,tier=a."),
    _query("watch", {"type": "string", "enum": ["true", "false", "1", "0"]}, "Stream changes."),
    _query("resourceVersion", {"type": "string", "pattern": "^[0-9]+$"}, "Watch from here."),
    _query("timeoutSeconds", {"type": "number", "minimum": 0, "maximum": 3600}, "Watch length."),
]
MODEL_BODY = ("application/json", "application/yaml")  # as kubectl and `modelplane apply` send
PATCH_BODY = (MERGE_PATCH, "application/json")
DRY_RUN = _query("dryRun", {"type": "string", "enum": ["All"]}, "Check everything, store nothing.")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    reply: Schema | None  # JSON schema of the 2xx body; None: no body
    code: int = 200
    body: Schema | None = None
    query: list[Schema] = field(default_factory=list)
    body_types: tuple[str, ...] = ("application/json",)
    reply_type: str = "application/json"
    open: bool = False  # no credential needed, even with --auth
    with_auth_only: bool = False  # served only with --auth
    failures: dict[int, str] = field(default_factory=dict)  # its own, with or without --auth

    def describe(self, auth: bool) -> Schema:
        names = [part[1:-1] for part in self.path.split("/") if part.startswith("{")]
        described: Schema = {
            "summary": self.summary,
            "operationId": _operation_id(self.method, self.path),
            "parameters": [_path(n) for n in names] + self.query,
            "responses": {str(self.code): _content(self.reply, self.reply_type)}
            | {code: failure for code, failure in _FAILURES.items() if auth or code not in _AUTH}
            | {str(code): _failure(why) for code, why in self.failures.items()},
        }
        if self.body is not None:
            described["requestBody"] = {
                "required": True,
                "content": {t: {"schema": self.body} for t in self.body_types},
            }
        if self.open and auth:
            described["security"] = []
        return described


def _content(schema: Schema | None, media_type: str) -> Schema:
    return reply("done", {media_type: schema} if schema is not None else None)


def _failure(why: str) -> Schema:
    return json_reply(why, ref("Status"))


_FAILURES = {
    str(code): _failure(why)
    for code, why in [
        (401, "no valid credential (with --auth)"),
        (403, "the credential lacks the role"),
        (404, "no such object"),
        (409, "exists already, or a stale resourceVersion"),
        (422, "invalid object or parameter, one cause per field"),
    ]
}
_AUTH = {"401", "403"}


def _operation_id(method: str, path: str) -> str:
    words = [p.strip("{}") for p in path.replace(PREFIX, "").split("/") if p]
    return method.lower() + "".join(w[:1].upper() + w[1:] for w in words)


def _list_of(kind: str, item: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {"kind": {"const": kind}, "items": {"type": "array", "items": item}},
    }


ONE = PREFIX + "/namespaces/{namespace}/models/{name}"
EVENT: Schema = {
    "type": "object",
    "required": ["type", "reason", "message", "lastTimestamp"],
    "properties": {k: {"type": "string"} for k in ("type", "reason", "message", "lastTimestamp")},
}
REVISION: Schema = {
    "type": "object",
    "required": ["name", "number", "digest", "created", "spec"],
    "properties": {
        "name": {"type": "string"},
        "number": {"type": "integer"},
        "digest": {"type": "string"},
        "created": {"type": "string"},
        "promoted": {"type": ["string", "null"], "description": "When it became stable."},
        "spec": ref("ModelSpec"),
    },
}
NUMBER_OR_NULL: Schema = {"type": ["number", "null"]}
METRICS_LATEST: Schema = {
    "type": "object",
    "required": ["namespace", "name", "requestsPerSecond"],
    "properties": {
        "namespace": {"type": "string"},
        "name": {"type": "string"},
        "time": NUMBER_OR_NULL,
        "requestsPerSecond": {"type": "number"},
        "errorRate": NUMBER_OR_NULL,
        "p99Ms": NUMBER_OR_NULL,
        "inFlight": {"type": "integer"},
    },
}
METRICS_POINT: Schema = {
    "type": "object",
    "properties": {
        "time": {"type": "number"},
        "requestsPerSecond": {"type": "number"},
        "errorRate": NUMBER_OR_NULL,
        "p50Ms": NUMBER_OR_NULL,
        "p99Ms": NUMBER_OR_NULL,
        "inFlight": {"type": "integer"},
        "readyReplicas": {"type": "integer"},
        "traffic": {"type": "integer"},
    },
}
MODEL_METRICS: Schema = {
    "type": "object",
    "required": ["revisions", "analyses", "source"],
    "properties": {
        "source": {"enum": ["gateway", "prometheus"]},
        "warning": {"type": "string"},
        "revisions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "revision": {"type": "string"},
                    "points": {"type": "array", "items": METRICS_POINT},
                },
            },
        },
        "analyses": {"type": "array", "items": {"type": "object"}},
    },
}
PERIOD = {"type": "string", "pattern": "^[1-9][0-9]*[smhdw]$"}
RELEASE_QUERY = [
    _query("since", PERIOD, "The period to report: 30d (default), 12h, 2w."),
    _query("undoWindow", PERIOD, "A release brought back within it failed (default 24h)."),
    _query("step", PERIOD, "The trend's bucket (default 1d, or 1w past 31 days)."),
]
SECONDS = {"type": ["number", "null"]}
RELEASE_FIGURES: Schema = {
    "type": "object",
    "required": ["releases", "deployments", "failed", "deploymentsPerDay", "changeFailureRate"],
    "properties": {
        "releases": {"type": "integer", "description": "Finished: reached 100% or failed."},
        "deployments": {"type": "integer", "description": "Reached 100%."},
        "failed": {"type": "integer"},
        "deploymentsPerDay": {"type": "number"},
        "leadTimeSeconds": SECONDS | {"description": "Median, commit (or apply) to promotion."},
        "changeFailureRate": SECONDS | {"description": "Failed over finished; null: none."},
        "timeToRestoreSeconds": SECONDS
        | {"description": "Median, bad traffic to none and SLO breach to recovery."},
        "incidents": {"type": "integer", "description": "SLO breaches restored."},
    },
}


def _team_report(kind: str, figures: Schema, model: Schema, more: dict[str, Schema]) -> Schema:
    """A report by team (namespace): the sum, and each team's with its trend and Models."""
    team = {"namespace": {"type": "string"}, "summary": figures,
            "trend": {"type": "array", "items": figures},
            "models": {"type": "array", "items": model}}  # fmt: skip
    return {
        "type": "object",
        "required": ["kind", "since", "until", "summary", "teams", *more],
        "properties": {
            "kind": {"const": kind},
            "since": {"type": "string"},
            "until": {"type": "string"},
            "summary": figures,
            "teams": {"type": "array", "items": {"type": "object", "properties": team}},
            **more,
        },
    }


RELEASE_REPORT = _team_report("ReleaseReport", RELEASE_FIGURES, {"type": "object"}, {
    "items": {"type": "array", "items": {"type": "object", "properties": {
        "namespace": {"type": "string"},
        "model": {"type": "string"},
        "revision": {"type": "string"},
        "outcome": {"enum": ["Promoted", "Undone", "RolledBack", "Aborted", "Superseded",
                             "InProgress"]},
        "freezeOverride": {"type": "string",
                           "description": "Released through a freeze, for this reason."},
    }}},
    "incidents": {"type": "array", "items": {"type": "object", "properties": {
        "namespace": {"type": "string"},
        "model": {"type": "string"},
        "revision": {"type": "string", "description": "Stable when the breach began."},
        "started": {"type": "string"},
        "restored": {"type": ["string", "null"], "description": "Null while it lasts."},
        "reason": {"type": "string"},
        "timeToRestoreSeconds": SECONDS,
    }}},
})  # fmt: skip
BAD_PERIOD = {400: "a period that is not a whole number and a unit (s, m, h, d, w)"}
USAGE_QUERY = [
    _query("since", PERIOD, "The period to report: 30d (default), 12h, 2w; from its first hour."),
    _query("step", PERIOD, "The trend's bucket (default 1d, or 1w past 31 days; at least 1h)."),
]
USAGE_FIGURES: Schema = {
    "type": "object",
    "required": [
        "replicaSeconds",
        "cpuCoreSeconds",
        "memoryGiBSeconds",
        "acceleratorSeconds",
        "requests",
        "clientErrors",
        "serverErrors",
        "promptTokens",
        "completionTokens",
    ],
    "properties": {
        "replicaSeconds": {"type": "number", "description": "Replicas starting or ready."},
        "cpuCoreSeconds": {"type": "number", "description": "Replica-seconds times CPU cores."},
        "memoryGiBSeconds": {"type": "number", "description": "Replica-seconds times GiB."},
        "acceleratorSeconds": {
            "type": "number",
            "description": "Replica-seconds times accelerators.",
        },
        "requests": {"type": "integer", "description": "Answered by a replica, or failed there."},
        "clientErrors": {"type": "integer", "description": "Of them, 4xx."},
        "serverErrors": {"type": "integer", "description": "Of them, 5xx."},
        "promptTokens": {"type": "integer"},
        "completionTokens": {"type": "integer"},
    },
}
NAMED_USAGE: Schema = {
    "type": "object",
    "required": ["name", "summary"],
    "properties": {"name": {"type": "string"}, "summary": USAGE_FIGURES},
}
USAGE_REPORT = _team_report("UsageReport", USAGE_FIGURES, NAMED_USAGE | {"properties": {
    **NAMED_USAGE["properties"], "revisions": {"type": "array", "items": NAMED_USAGE},
}}, {"stepSeconds": {"type": "integer"}})  # fmt: skip
QUOTA = ref("Quota")
SYNCING: Schema = {
    "type": "object",
    "required": ["syncing"],
    "properties": {"syncing": {"type": "array", "items": {"type": "string"}}},
}
PUSHED: Schema = {
    "type": "object",
    "required": ["syncing"],
    "properties": {
        "syncing": {"type": "array", "items": {"type": "string"}},
        "ignored": {"type": "string", "description": "Why nothing syncs: not a push, or not to "
                    "the source's branch."},
    },
}  # fmt: skip
WEBHOOK_HEADERS = [
    *(_header(name, "The hex HMAC-SHA256 of the body with the source's webhook secret"
              + (f", after {prefix}" if prefix else "") + ".") for name, prefix in SIGNATURES),
    _header(GITLAB_HEADER, "The source's webhook secret itself (GitLab)."),
    *(_header(name, "The event: only a push syncs.") for name in EVENTS),
]  # fmt: skip
WEBHOOK_FAILURES = {
    401: "no signature, or one that does not match the source's webhook secret",
    403: "the source has no webhook secret (with --auth)",
    413: f"the body is over {MAX_BODY} bytes",
}

OPERATIONS = [
    Operation("GET", "/healthz", "Liveness of the control API.", STRING, reply_type="text/plain",
              open=True),
    Operation("GET", "/openapi.json", "This description.", {"type": "object"}, open=True),
    Operation("GET", PREFIX + "/models", "List or watch Models in every namespace you may read.",
              _list_of("ModelList", ref("Model")), query=LIST_QUERY),
    Operation("GET", PREFIX + "/namespaces/{namespace}/models", "List or watch one namespace.",
              _list_of("ModelList", ref("Model")), query=LIST_QUERY),
    Operation("POST", PREFIX + "/namespaces/{namespace}/models", "Create a Model.", ref("Model"),
              201, ref("Model"), [DRY_RUN], MODEL_BODY),
    Operation("GET", ONE, "Read a Model.", ref("Model")),
    Operation("PUT", ONE, "Replace a Model's spec, labels and annotations.", ref("Model"),
              body=ref("Model"), query=[DRY_RUN], body_types=MODEL_BODY),
    Operation("PATCH", ONE, "Merge-patch a Model (RFC 7386).", ref("Model"),
              body={"type": "object"}, query=[DRY_RUN], body_types=PATCH_BODY),
    Operation("DELETE", ONE, "Delete a Model and its revisions.", ref("Model"), query=[DRY_RUN]),
    Operation("GET", ONE + "/status", "Read a Model's status.", ref("Model")),
    Operation("PUT", ONE + "/status", "Replace a Model's status (admin).", ref("Model"),
              body=ref("Model"), query=[DRY_RUN], body_types=MODEL_BODY),
    Operation("PATCH", ONE + "/status", "Merge-patch a Model's status (admin).", ref("Model"),
              body={"type": "object"}, query=[DRY_RUN], body_types=PATCH_BODY),
    Operation("GET", ONE + "/events", "The latest events, oldest first.",
              _list_of("EventList", EVENT),
              query=[_query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "")]),
    Operation("GET", ONE + "/revisions", "Immutable revisions, oldest first, with their specs.",
              _list_of("RevisionList", REVISION)),
    Operation("GET", ONE + "/logs", "Replica logs, each line prefixed with its replica.", STRING,
              reply_type="text/plain", query=[
                  _query("revision", {"type": "string"}, "Only this revision's replicas."),
                  _query("tailLines", {"type": "integer", "minimum": 1, "maximum": 100000}, ""),
              ]),
    Operation("GET", METRICS_PREFIX + "/models", "Each Model's last interval.",
              _list_of("ModelMetricsList", METRICS_LATEST)),
    Operation("GET", METRICS_PREFIX + "/namespaces/{namespace}/models/{name}",
              "The last hour per revision, and the rollout's analyses.", MODEL_METRICS),
    Operation("GET", RELEASES_PREFIX + "/releases",
              "Releases and their DORA figures in every namespace you may read, per team.",
              RELEASE_REPORT, query=RELEASE_QUERY, failures=BAD_PERIOD),
    Operation("GET", RELEASES_PREFIX + "/namespaces/{namespace}/releases",
              "One team's releases and DORA figures.", RELEASE_REPORT, query=RELEASE_QUERY,
              failures=BAD_PERIOD),
    Operation("GET", USAGE_PREFIX + "/usage",
              "What the Models of every namespace you may read used, per team, Model and "
              "revision.", USAGE_REPORT, query=USAGE_QUERY, failures=BAD_PERIOD),
    Operation("GET", USAGE_PREFIX + "/namespaces/{namespace}/usage",
              "What one team's Models used.", USAGE_REPORT, query=USAGE_QUERY,
              failures=BAD_PERIOD),
    Operation("GET", "/quotas", "Every namespace's quota.", _list_of("QuotaList", QUOTA)),
    Operation("GET", "/quotas/{namespace}", "One namespace's quota.", QUOTA),
    Operation("PUT", "/quotas/{namespace}", "Set a namespace's quota (admin).", QUOTA,
              body=ref("QuotaSpec")),
    Operation("DELETE", "/quotas/{namespace}", "Lift a namespace's quota (admin).", None, 204),
    Operation("GET", "/gitops", "Git sources and their last sync.", {"type": "object"}),
    Operation("POST", "/gitops", "Add a git source (admin).", {"type": "object"}, 201,
              ref("GitSourceSpec")),
    Operation("POST", "/gitops/webhook", "Sync every source now (a git host's push hook).",
              SYNCING, 202),
    Operation("GET", "/gitops/{name}", "One git source and its last sync.", {"type": "object"}),
    Operation("DELETE", "/gitops/{name}", "Remove a git source; its Models keep serving.", None,
              204),
    Operation("POST", "/gitops/{name}/sync", "Sync one source now.", SYNCING, 202),
    Operation("POST", "/gitops/{name}/webhook",
              "A git host's push: syncs the source if signed with its webhook secret (no API "
              "key).", PUSHED, 202, {"type": "object"}, WEBHOOK_HEADERS, open=True,
              failures=WEBHOOK_FAILURES),
    Operation("GET", "/backup", "A backup of the platform's state, taken now: a gzipped tar "
              "(admin).", {"type": "string", "contentMediaType": "application/gzip"},
              reply_type="application/gzip"),
    Operation("GET", "/auth/keys", "API keys (never their secrets).", {"type": "object"},
              with_auth_only=True),
    Operation("POST", "/auth/keys", "Create an API key; its secret is shown once.",
              {"type": "object"}, 201, ref("KeyRequest"), with_auth_only=True),
    Operation("DELETE", "/auth/keys/{id}", "Revoke an API key; the reply is the key, revoked.",
              {"type": "object"}, with_auth_only=True),
]  # fmt: skip


# What a reply makes, and the operations that take it: OpenAPI links, so that a client (and
# Schemathesis's stateful phase) can follow a created Model, quota, source or key to every
# operation on it, rather than guess names that 404.
MODEL_MADE = {"namespace": "$response.body#/metadata/namespace",
              "name": "$response.body#/metadata/name"}  # fmt: skip
PRODUCERS: dict[tuple[str, str], tuple[dict[str, str], tuple[str, ...]]] = {
    ("POST", PREFIX + "/namespaces/{namespace}/models"): (
        MODEL_MADE,
        (ONE, METRICS_PREFIX + "/namespaces/{namespace}/models/{name}"),
    ),
    ("PUT", ONE): (MODEL_MADE, (ONE,)),
    ("PUT", "/quotas/{namespace}"): ({"namespace": "$response.body#/namespace"}, ("/quotas/",)),
    ("POST", "/gitops"): ({"name": "$response.body#/name"}, ("/gitops/{name}",)),
    ("POST", "/auth/keys"): ({"id": "$response.body#/id"}, ("/auth/keys/{id}",)),
}


def _links(producer: Operation, served: list[Operation]) -> dict[str, Schema]:
    """OpenAPI links from ``producer``'s reply to every served operation on what it made."""
    found = PRODUCERS.get((producer.method, producer.path))
    if found is None:
        return {}
    parameters, prefixes = found
    links = {}
    for op in served:
        names = {part[1:-1] for part in op.path.split("/") if part.startswith("{")}
        if op.path.startswith(prefixes) and names and names <= parameters.keys() and op != producer:
            operation_id = _operation_id(op.method, op.path)
            links[operation_id[:1].upper() + operation_id[1:]] = {
                "operationId": operation_id,
                "parameters": {name: parameters[name] for name in sorted(names)},
            }
    return links


def _schemas() -> dict[str, Schema]:
    _, found = models_json_schema(
        [(t, "validation") for t in (Model, QuotaSpec, GitSourceSpec, KeyRequest)],
        by_alias=True,
        ref_template=COMPONENTS + "{model}",
    )
    schemas: dict[str, Schema] = found["$defs"]
    quota = dict(schemas["QuotaSpec"])
    quota["properties"] = {"namespace": {"type": "string"}, **quota["properties"]}
    schemas["Quota"] = quota
    schemas["Status"] = {
        "type": "object",
        "required": ["kind", "status", "message", "reason", "code"],
        "properties": {
            "kind": {"const": "Status"},
            "status": {"const": "Failure"},
            "message": {"type": "string"},
            "reason": {"type": "string"},
            "code": {"type": "integer"},
            "details": {"type": "object"},
        },
    }
    return schemas


def document(auth: bool) -> Schema:
    """The description of the API as served: with ``auth``, every operation but the open ones
    needs a bearer credential, and API keys can be managed."""
    paths: dict[str, Schema] = {}
    served = [op for op in OPERATIONS if auth or not op.with_auth_only]
    for op in served:
        operation = op.describe(auth)
        links = _links(op, served)
        if links:
            operation["responses"][str(op.code)]["links"] = links
        paths.setdefault(op.path, {})[op.method.lower()] = operation
    return describe(
        "modelplane control API",
        "v1alpha1",
        "Kubernetes-shaped REST over the embedded platform's Models, with metrics, quotas, git "
        "sources, API keys and backups. A dry run's reply carries the "
        f"{REVISION_DIGEST_HEADER} header.",
        paths,
        _schemas(),
        bearer=auth,
    )


def openapi_route(auth: bool) -> Route:
    described = document(auth)

    async def serve(_: Request) -> Response:
        return JSONResponse(described)

    return Route("/openapi.json", serve)
