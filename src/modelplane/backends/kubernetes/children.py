"""The objects a Model owns on a cluster, as manifests: pure functions of the Model, a revision
and the operator's settings, so the same inputs always give the same bytes.

Per revision: a ControllerRevision holding its spec, and while it runs a Deployment of
``modelplane serve`` with the revision's manifest, a Service and a PodDisruptionBudget. Per
model: an ``HTTPRoute`` with weighted backends, when Gateway API is installed, and for a model
that serves LoRA adapters a ConfigMap with their list, mounted into its pods (the kubelet
refreshes the file, so an edit reaches running pods without a new revision). With the Gateway
API Inference Extension installed, each running revision of a generative model is also an
``InferencePool`` (its pods, for an endpoint picker to choose among), and the route sends the
model's OpenAI API requests to the pools by the same weights. Every child
carries the recommended ``app.kubernetes.io/*`` labels, an owner reference to its Model
(deleting the Model collects them) and, but for the immutable revisions, a hash of its own
content, so a converged child is recognised without a write.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from modelplane import __version__
from modelplane.api import (
    API_VERSION,
    GENERATIVE_TASKS,
    KIND,
    Model,
    ModelSpec,
    ObjectMeta,
    Source,
    dump_yaml,
    revision_name,
)
from modelplane.api.adapters import (
    ADAPTERS_FILE,
    ADAPTERS_FILE_ENV,
    adapter_list,
    serves_adapters,
)

Manifest = dict[str, Any]

MANAGER = "modelplane"
LABEL_MODEL = "modelplane.io/model"
LABEL_REVISION = "modelplane.io/revision"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
HASH_ANNOTATION = "modelplane.io/applied-hash"
RUNTIME_PORT = 8080
RUNTIME_SERVICE = "modelplane-runtime"  # OTEL_SERVICE_NAME of model pods, unless set
SERVICE_PORT = 80
CACHE_DIR = "/var/cache/modelplane"
# What the fetch step leaves for the model: a link, in the shared volume, to the artifact.
ARTIFACT_LINK = f"{CACHE_DIR}/artifact"
CREDENTIALS_MOUNT = "/var/run/modelplane/credentials"  # source.credentials, for the fetch step only
# The Model's adapter list (its ConfigMap, kept current by the kubelet), and the model
# container's own writable cache, where it fetches an adapter on its first request.
ADAPTERS_DIR = "/etc/modelplane/adapters"
ADAPTERS_CACHE = "/var/cache/modelplane-adapters"
TMP_DIR = "/tmp"  # noqa: S108 - an emptyDir of the pod's own: the root filesystem is read-only
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - in a pod: the kubelet's probes and the gateway reach it


@dataclass(frozen=True)
class ClusterSettings:
    """How the operator builds children: the runtime image and cluster specifics."""

    image: str = f"ghcr.io/modelplane/modelplane:{__version__}"
    image_pull_policy: str = "IfNotPresent"
    accelerator_resource: str = "nvidia.com/gpu"
    gateway_url: str = "http://modelplane-gateway.modelplane-system.svc"
    # The Gateway (namespace/name) HTTPRoutes attach to; None: routes have no parentRefs.
    route_parent: tuple[str, str] | None = None
    # Environment for every model pod, e.g. the OTEL_* variables that send its traces.
    model_env: tuple[tuple[str, str], ...] = ()
    node_cache_url: str | None = None  # the node cache agent's Service, when installed
    # Each InferencePool's endpoint picker: a Service in the pool's namespace, named by
    # formatting this with the pool's name (``pool``) and its Model's (``model``), and its port.
    endpoint_picker: str = "{pool}-epp"
    endpoint_picker_port: int = 9002


def labels(model: Model, revision: str | None = None) -> dict[str, str]:
    found = {
        "app.kubernetes.io/name": "modelplane-model",
        "app.kubernetes.io/instance": model.metadata.name,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/part-of": "modelplane",
        LABEL_MANAGED_BY: MANAGER,
        LABEL_MODEL: model.metadata.name,
    }
    if revision is not None:
        found[LABEL_REVISION] = revision
        found["app.kubernetes.io/version"] = revision
    return found


def selector(model: Model, revision: str) -> dict[str, str]:
    return {LABEL_MODEL: model.metadata.name, LABEL_REVISION: revision}


def owner_reference(model: Model) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": model.metadata.name,
        "uid": model.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _object(api_version: str, kind: str, name: str, model: Model, revision: str | None) -> Manifest:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": model.metadata.namespace,
            "labels": labels(model, revision),
            "ownerReferences": [owner_reference(model)],
        },
    }


def hashed(manifest: Manifest) -> Manifest:
    """``manifest`` with the hash of its content in an annotation."""
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    metadata = manifest["metadata"]
    metadata["annotations"] = {**metadata.get("annotations", {}), HASH_ANNOTATION: digest}
    return manifest


def converged(live: Manifest, manifest: Manifest) -> bool:
    """Whether the live object is what ``manifest`` (``hashed``) asks for: the same hash, and
    the same replicas, which others change most (``kubectl scale``) and leave the hash as was."""
    wanted = manifest.get("spec", {}).get("replicas")
    same_scale = wanted is None or (live.get("spec") or {}).get("replicas") == wanted
    return same_scale and _applied_hash(live) == _applied_hash(manifest)


def _applied_hash(body: Manifest) -> str | None:
    found = (body.get("metadata", {}).get("annotations") or {}).get(HASH_ANNOTATION)
    return str(found) if found is not None else None


def revision_manifest(model: Model, spec: ModelSpec) -> str:
    """The Model file a revision's pods serve: its spec under the model's name."""
    served = Model(
        metadata=ObjectMeta(name=model.metadata.name, namespace=model.metadata.namespace),
        spec=spec,
    )
    return dump_yaml(served, include_status=False)


def controller_revision(
    model: Model, number: int, digest: str, source: Source | None = None
) -> Manifest:
    """Revision ``number`` of ``model``: its spec as it stands with ``source`` (the spec's with
    its moving reference resolved), immutable once made."""
    meta = model.metadata
    spec = model.spec.model_copy(update={"source": source}) if source else model.spec
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": revision_name(meta.name, number),
            "namespace": meta.namespace,
            "labels": labels(model),
            "ownerReferences": [owner_reference(model)],
        },
        "revision": number,
        "data": {
            "digest": digest,
            "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        },
    }


def deployment(
    model: Model, revision: str, spec: ModelSpec, replicas: int, settings: ClusterSettings
) -> Manifest:
    manifest = _object("apps/v1", "Deployment", revision, model, revision)
    manifest["spec"] = {
        "replicas": replicas,
        "selector": {"matchLabels": selector(model, revision)},
        "template": {
            "metadata": {"labels": labels(model, revision)},
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "terminationGracePeriodSeconds": 30,
                "initContainers": [_fetch_container(model, revision, spec, settings)],
                "containers": [_model_container(model, revision, spec, settings)],
                "volumes": _volumes(model, spec),
            },
        },
    }
    return hashed(manifest)


RESTRICTED_CONTAINER: Manifest = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _volumes(model: Model, spec: ModelSpec) -> list[Manifest]:
    found: list[Manifest] = [{"name": "cache", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    if spec.source.credentials is not None:
        secret = {"secretName": spec.source.credentials.secret, "defaultMode": 0o400}
        found.append({"name": "credentials", "secret": secret})
    if serves_adapters(spec):
        # Optional: a pod never waits on it; without the file, the revision's list stands.
        listed = {"name": adapters_config_map_name(model), "optional": True}
        found += [
            {"name": "adapters", "configMap": listed},
            {"name": "adapter-cache", "emptyDir": {}},
        ]
    return found


def adapters_config_map_name(model: Model) -> str:
    return f"{model.metadata.name}-adapters"


def adapters_config_map(model: Model) -> Manifest:
    """The LoRA adapters the Model's pods serve now: its spec's list, not its revision's."""
    manifest = _object("v1", "ConfigMap", adapters_config_map_name(model), model, None)
    manifest["data"] = {ADAPTERS_FILE: adapter_list(model.spec).model_dump_json(by_alias=True)}
    return hashed(manifest)


def _fetch_container(
    model: Model, revision: str, spec: ModelSpec, settings: ClusterSettings
) -> Manifest:
    """The step that fetches and verifies the artifact before the model starts: the same code
    as embedded mode, the only container that sees the source's credentials."""
    mounts: list[Manifest] = [
        {"name": "cache", "mountPath": CACHE_DIR},
        {"name": "tmp", "mountPath": TMP_DIR},
    ]
    args = ["fetch", "--cache-dir", CACHE_DIR, "--link", ARTIFACT_LINK]
    if settings.node_cache_url is not None:
        args += ["--node-cache", settings.node_cache_url]
    if spec.source.credentials is not None:
        mounts.append({"name": "credentials", "mountPath": CREDENTIALS_MOUNT, "readOnly": True})
        args += ["--secret-dir", CREDENTIALS_MOUNT]
    return {
        "name": "fetch",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": args,
        "env": [{"name": "MODELPLANE_MANIFEST", "value": revision_manifest(model, spec)}],
        "resources": _resources(spec, settings),
        "securityContext": RESTRICTED_CONTAINER,
        # Its last error line (never a secret: messages name sources, not credentials) is the
        # pod's termination message, which the operator puts on the Model's status.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }


def _model_container(
    model: Model, revision: str, spec: ModelSpec, settings: ClusterSettings
) -> Manifest:
    """The runtime serving ``revision``: restricted, probed, with its manifest in its env,
    reading the artifact the fetch step left from a volume it may not write."""
    args = [
        *("serve", "--host", ALL_INTERFACES, "--port", str(RUNTIME_PORT)),
        *("--model-version", revision, "--artifact", ARTIFACT_LINK),
    ]
    env = [
        {"name": "MODELPLANE_MANIFEST", "value": revision_manifest(model, spec)},
        *_telemetry_env(model, revision, spec, settings),
    ]
    mounts: list[Manifest] = [
        {"name": "cache", "mountPath": CACHE_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": TMP_DIR},
    ]
    if serves_adapters(spec):
        args += ["--cache-dir", ADAPTERS_CACHE]
        env.append({"name": ADAPTERS_FILE_ENV, "value": f"{ADAPTERS_DIR}/{ADAPTERS_FILE}"})
        mounts += [
            {"name": "adapters", "mountPath": ADAPTERS_DIR, "readOnly": True},
            {"name": "adapter-cache", "mountPath": ADAPTERS_CACHE},
        ]
    return {
        "name": "model",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": args,
        "env": env,
        "ports": [{"name": "http", "containerPort": RUNTIME_PORT, "protocol": "TCP"}],
        **_probes(),
        "resources": _resources(spec, settings),
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": mounts,
    }


def _probes() -> Manifest:
    probe = {"port": "http", "scheme": "HTTP"}
    return {
        "startupProbe": {
            "httpGet": {"path": "/v2/health/live", **probe},
            "periodSeconds": 2,
            "failureThreshold": 150,  # up to 5 minutes to start the process
        },
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", **probe},
            "periodSeconds": 2,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", **probe},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
    }


def _resources(spec: ModelSpec, settings: ClusterSettings) -> Manifest:
    resources = spec.resources
    limits: dict[str, Any] = {"memory": resources.memory}
    if resources.accelerators:
        limits[settings.accelerator_resource] = resources.accelerators
    return {"requests": {"cpu": resources.cpu, "memory": resources.memory}, "limits": limits}


def _telemetry_env(
    model: Model, revision: str, spec: ModelSpec, settings: ClusterSettings
) -> list[Manifest]:
    """The cluster's model environment with the revision's own OTEL_* over it, and where OTEL_*
    is set, the resource that says which pod, model and revision a span or metric came from."""
    given = {**dict(settings.model_env), **spec.telemetry.env}
    found: list[Manifest] = [{"name": k, "value": v} for k, v in sorted(given.items())]
    if not any(name.startswith("OTEL_") for name in given):
        return found
    meta = model.metadata
    resource = ",".join(
        [
            *([given["OTEL_RESOURCE_ATTRIBUTES"]] if given.get("OTEL_RESOURCE_ATTRIBUTES") else []),
            "k8s.pod.name=$(MODELPLANE_POD_NAME)",  # expanded by the kubelet, from the line below
            f"k8s.namespace.name={meta.namespace}",
            f"modelplane.model.name={meta.name}",
            f"modelplane.revision={revision}",
        ]
    )
    found = [e for e in found if e["name"] not in ("OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME")]
    return [
        {"name": "MODELPLANE_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        *found,
        {
            "name": "OTEL_SERVICE_NAME",
            "value": given.get("OTEL_SERVICE_NAME", "modelplane-runtime"),
        },
        {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": resource},
    ]


def service(model: Model, revision: str) -> Manifest:
    manifest = _object("v1", "Service", revision, model, revision)
    manifest["spec"] = {
        "selector": selector(model, revision),
        "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
    }
    return hashed(manifest)


def disruption_budget(model: Model, revision: str) -> Manifest:
    manifest = _object("policy/v1", "PodDisruptionBudget", revision, model, revision)
    manifest["spec"] = {"maxUnavailable": 1, "selector": {"matchLabels": selector(model, revision)}}
    return hashed(manifest)


POOL_API_VERSION = "inference.networking.k8s.io/v1"
POOL_GROUP = POOL_API_VERSION.split("/")[0]
# The header a Gateway's body-based routing sets from the request body's ``model`` field.
MODEL_NAME_HEADER = "X-Gateway-Model-Name"
MATCHES_PER_RULE, MATCHES_PER_ROUTE = 64, 128  # Gateway API's bounds on an HTTPRoute


def pooled(spec: ModelSpec) -> bool:
    """Whether a revision of ``spec`` is an InferencePool (where the extension is installed):
    a generative model, whose replicas report the engine state an endpoint picker reads."""
    return spec.task in GENERATIVE_TASKS


def inference_pool(model: Model, revision: str, settings: ClusterSettings) -> Manifest:
    """A revision's pods as a pool of the Gateway API Inference Extension: a Gateway running
    the extension asks the pool's endpoint picker which of them takes each request."""
    manifest = _object(POOL_API_VERSION, "InferencePool", revision, model, revision)
    picker = settings.endpoint_picker.format(pool=revision, model=model.metadata.name)
    manifest["spec"] = {
        "selector": {"matchLabels": selector(model, revision)},
        "targetPorts": [{"number": RUNTIME_PORT}],
        "appProtocol": "http",
        "endpointPickerRef": {
            "kind": "Service",
            "name": picker,
            "port": {"number": settings.endpoint_picker_port},
            "failureMode": "FailClose",
        },
    }
    return hashed(manifest)


def http_route(
    model: Model, traffic: dict[str, int], settings: ClusterSettings, pools: bool = False
) -> Manifest:
    """One route for the model's v2 paths, split over its revisions' Services by weight; with
    ``pools``, also one for its OpenAI API requests (named by the body's ``model``, which the
    Gateway's body-based routing puts in a header), split over its revisions' InferencePools."""
    meta = model.metadata
    manifest = _object("gateway.networking.k8s.io/v1", "HTTPRoute", meta.name, model, None)
    backends = [
        {"name": name, "port": SERVICE_PORT, "weight": weight}
        for name, weight in sorted(traffic.items())
    ]
    served = f"/v2/models/{meta.name}"  # the path the runtime answers on
    rules: list[dict[str, Any]] = [
        {
            "matches": [
                {
                    "path": {
                        "type": "PathPrefix",
                        "value": f"/v2/models/{meta.namespace}/{meta.name}",
                    }
                }
            ],
            "filters": [
                {
                    "type": "URLRewrite",
                    "urlRewrite": {
                        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": served}
                    },
                }
            ],
            "backendRefs": backends,
        }
    ]
    if (
        meta.namespace == "default"
    ):  # as the embedded gateway: the default namespace may be left out
        rules.append(
            {
                "matches": [{"path": {"type": "PathPrefix", "value": served}}],
                "backendRefs": backends,
            }
        )
    if pools:
        rules += _openai_rules(model, traffic, sum(len(rule["matches"]) for rule in rules))
    spec: dict[str, Any] = {"rules": rules}
    if settings.route_parent is not None:
        namespace, name = settings.route_parent
        spec["parentRefs"] = [{"name": name, "namespace": namespace}]
    manifest["spec"] = spec
    return hashed(manifest)


def _openai_rules(model: Model, traffic: dict[str, int], taken: int) -> list[dict[str, Any]]:
    """The OpenAI API paths, for each name a client may give the model or its adapters, in
    rules of at most ``MATCHES_PER_RULE`` matches; ``taken``: matches the route has already.
    Gateway API allows a route ``MATCHES_PER_ROUTE`` in all: adapters past that are left out
    (they stay reachable through modelplane's own gateway)."""
    meta = model.metadata
    names = [model.key, *(f"{meta.namespace}/{a.name}" for a in model.spec.adapters or ())]
    if meta.namespace == "default":  # as the embedded gateway: the namespace may be left out
        names = [form for name in names for form in (name, name.split("/", 1)[1])]
    names = names[: MATCHES_PER_ROUTE - taken]
    matches = [
        {
            "path": {"type": "PathPrefix", "value": "/v1/"},
            "headers": [{"type": "Exact", "name": MODEL_NAME_HEADER, "value": name}],
        }
        for name in names
    ]
    pools = [
        {"group": POOL_GROUP, "kind": "InferencePool", "name": name, "weight": weight}
        for name, weight in sorted(traffic.items())
    ]
    return [
        {"matches": matches[start : start + MATCHES_PER_RULE], "backendRefs": pools}
        for start in range(0, len(matches), MATCHES_PER_RULE)
    ]
