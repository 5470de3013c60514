"""What ``modelplane install`` puts on a cluster, as manifests: the Model CRD, a namespace, and
for the operator and the gateway each a ServiceAccount, least-privilege RBAC, a Deployment and a
Service. ``deploy/kustomize`` holds the same objects, rendered from here
(``scripts/render-deploy``), so the two never drift apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelplane import __version__
from modelplane.api import GROUP, crd
from modelplane.backends.kubernetes.children import LABEL_MANAGED_BY
from modelplane.backends.kubernetes.node_cache import NAME as NODE_CACHE
from modelplane.backends.kubernetes.node_cache import URL as NODE_CACHE_URL
from modelplane.backends.kubernetes.node_cache import node_cache_manifests
from modelplane.errors import KubernetesError
from modelplane.security.tokens import group_grants

Manifest = dict[str, Any]

NAME = "modelplane-operator"
GATEWAY = "modelplane-gateway"
OPERATOR_PORTS = {"http": 8080, "healthz": 8081}  # http: /metrics, and gateways' load reports
GATEWAY_PORT = 8080
WRITE = ["get", "list", "watch", "create", "patch", "update", "delete"]
READ = ["get", "list", "watch"]

# Everything the operator touches, and nothing else: no wildcards, no Secrets.
RULES: list[Manifest] = [
    {"apiGroups": [GROUP], "resources": ["models"], "verbs": READ},
    {"apiGroups": [GROUP], "resources": ["models/status"], "verbs": ["get", "patch", "update"]},
    {"apiGroups": ["apps"], "resources": ["deployments", "controllerrevisions"], "verbs": WRITE},
    {"apiGroups": [""], "resources": ["services", "configmaps"], "verbs": WRITE},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": WRITE},
    {"apiGroups": [""], "resources": ["pods"], "verbs": READ},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": READ},  # tenants' replica quotas
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "verbs": WRITE},
    {"apiGroups": ["inference.networking.k8s.io"], "resources": ["inferencepools"], "verbs": WRITE},
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "resourceNames": [
            "httproutes.gateway.networking.k8s.io",
            "inferencepools.inference.networking.k8s.io",
        ],
        "verbs": ["get"],
    },
]
# In its own namespace only: the Lease the operator replicas contend for (leadership.py).
LEASE_RULES: list[Manifest] = [
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "create", "update"],
    },
]
OPERATOR_REPLICAS = 2  # one leads, one waits to take over (leader election on a Lease)
# The gateway reads where traffic goes (Model status), to whom (EndpointSlices), and each
# namespace's quotas (Namespace annotations).
GATEWAY_RULES: list[Manifest] = [
    {"apiGroups": [GROUP], "resources": ["models"], "verbs": READ},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": READ},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": READ},
]
# Where the gateway's pods see the API keys Secret: its whole volume, not a subPath, since
# Kubernetes updates a Secret volume by swapping a symlink, which a subPath never sees.
API_KEYS_DIR = "/etc/modelplane/api-keys"
API_KEYS_FILE = "keys.json"  # the Secret's key: `kubectl create secret generic --from-file`


@dataclass(frozen=True)
class GatewayAuth:
    """How the cluster gateway checks credentials: API keys from a Secret (a file written by
    ``modelplane auth keys create --to-file``), an identity provider's tokens, or both. Neither:
    the gateway takes every request."""

    api_keys_secret: str | None = None
    oidc_issuer: str | None = None
    oidc_audience: str = "modelplane"
    oidc_jwks: str | None = None  # a URL: the pods have no JWKS file
    oidc_groups: tuple[str, ...] = ()  # GROUP=NAMESPACE:ROLE

    def __post_init__(self) -> None:
        if bool(self.oidc_issuer) != bool(self.oidc_jwks):
            raise ValueError("an OIDC issuer and its JWKS URL go together")
        if self.oidc_jwks and not self.oidc_jwks.startswith(("https://", "http://")):
            raise ValueError(f"the JWKS {self.oidc_jwks!r} must be a URL the gateway can fetch")
        group_grants(self.oidc_groups)  # a malformed one is refused here, not by the pods

    def args(self) -> list[str]:
        found: list[str] = []
        if self.api_keys_secret:
            found += ["--api-keys", f"{API_KEYS_DIR}/{API_KEYS_FILE}"]
        if self.oidc_issuer and self.oidc_jwks:
            found += ["--oidc-issuer", self.oidc_issuer, "--oidc-audience", self.oidc_audience,
                      "--oidc-jwks", self.oidc_jwks]  # fmt: skip
            for group in self.oidc_groups:
                found += ["--oidc-group", group]
        return found


@dataclass(frozen=True)
class InstallOptions:
    namespace: str = "modelplane-system"
    image: str = f"ghcr.io/modelplane/modelplane:{__version__}"
    prometheus: str | None = None
    gateway_auth: GatewayAuth = GatewayAuth()
    node_cache: bool = False  # an agent per node keeps artifacts for the node's pods


def labels(name: str = NAME) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "modelplane",
        "app.kubernetes.io/version": __version__,
        LABEL_MANAGED_BY: "modelplane-install",
    }


def manifests(options: InstallOptions) -> list[Manifest]:
    namespace = options.namespace
    return [
        crd(),
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {**labels(), "pod-security.kubernetes.io/enforce": "restricted"},
            },
        },
        *_identity(NAME, namespace, RULES),
        *_namespaced_role(NAME, namespace, LEASE_RULES),
        *_identity(GATEWAY, namespace, GATEWAY_RULES),
        _operator(options),
        _service(NAME, namespace, "http", OPERATOR_PORTS["http"]),
        _disruption_budget(NAME, namespace),
        _gateway(options),
        _service(GATEWAY, namespace, "http", 80),
        *(node_cache_manifests(options.image, labels(NODE_CACHE)) if options.node_cache else ()),
    ]


def _meta(name: str, namespace: str | None) -> Manifest:
    found: Manifest = {"name": name, "labels": labels(name)}
    if namespace is not None:
        found["namespace"] = namespace
    return found


def _identity(name: str, namespace: str, rules: list[Manifest]) -> list[Manifest]:
    """A ServiceAccount and what it may do, cluster-wide."""
    rbac = "rbac.authorization.k8s.io"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, namespace)},
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRole",
            "metadata": _meta(name, None),
            "rules": rules,
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(name, None),
            "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def _namespaced_role(name: str, namespace: str, rules: list[Manifest]) -> list[Manifest]:
    """A Role and its binding to the ServiceAccount ``name``: rights in ``namespace`` alone."""
    rbac = "rbac.authorization.k8s.io"
    return [
        {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": _meta(name, namespace),
         "rules": rules},
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": _meta(name, namespace),
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]  # fmt: skip


def _disruption_budget(name: str, namespace: str) -> Manifest:
    """A drain takes one replica at a time: the other keeps (or takes over) the lease."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(name, namespace),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": name}}},
    }


def _service(name: str, namespace: str, port_name: str, port: int) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, namespace),
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": port_name, "port": port, "targetPort": port_name}],
        },
    }


def _operator(options: InstallOptions) -> Manifest:
    args = ["operator", "--leader-elect", "--log-level", "info", "--image", options.image]
    if options.prometheus:
        args += ["--prometheus", options.prometheus]
    args += ["--gateway-url", f"http://{GATEWAY}.{options.namespace}.svc"]
    if options.node_cache:
        args += ["--node-cache-url", NODE_CACHE_URL]
    # Answered by the replica that waits for the lease too: waiting is healthy, and a rollout
    # that waited for the new pod to lead would never finish while the old one holds it.
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    # One replica replaced at a time, never a third beside them: the other one leads meanwhile.
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    ports = OPERATOR_PORTS
    return _deployment(NAME, options, args, ports, (probe, probe), OPERATOR_REPLICAS, strategy)


def _gateway(options: InstallOptions) -> Manifest:
    load = f"http://{NAME}.{options.namespace}.svc:{OPERATOR_PORTS['http']}/v1/load"
    auth = options.gateway_auth
    args = ["gateway", "--port", str(GATEWAY_PORT), "--report-to", load, *auth.args()]
    live = {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 10}
    ready = {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 2}
    ports = {"http": GATEWAY_PORT}
    strategy = {"type": "RollingUpdate"}
    found = _deployment(GATEWAY, options, args, ports, (live, ready), 2, strategy)
    if auth.api_keys_secret:
        _mount_api_keys(found["spec"]["template"]["spec"], auth.api_keys_secret)
    return found


def _mount_api_keys(pod: Manifest, secret: str) -> None:
    """The Secret's ``keys.json``, read-only; a Secret missing that key keeps the pods from
    starting, with an event that names it."""
    pod["containers"][0]["volumeMounts"] = [
        {"name": "api-keys", "mountPath": API_KEYS_DIR, "readOnly": True}
    ]
    pod["volumes"] = [
        {
            "name": "api-keys",
            "secret": {
                "secretName": secret,
                "items": [{"key": API_KEYS_FILE, "path": API_KEYS_FILE}],
            },
        }
    ]


def _deployment(
    name: str,
    options: InstallOptions,
    args: list[str],
    ports: dict[str, int],
    probes: tuple[Manifest, Manifest],  # liveness, readiness
    replicas: int,
    strategy: Manifest,
) -> Manifest:
    liveness, readiness = probes
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, options.namespace),
        "spec": {
            "replicas": replicas,
            "strategy": strategy,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels(name)},
                "spec": {
                    "serviceAccountName": name,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": name.removeprefix("modelplane-"),
                            "image": options.image,
                            "args": args,
                            "ports": [
                                {"name": port_name, "containerPort": port}
                                for port_name, port in ports.items()
                            ],
                            "livenessProbe": liveness,
                            "readinessProbe": readiness,
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "256Mi"},
                                "limits": {"memory": "1Gi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                                "readOnlyRootFilesystem": True,
                                "runAsNonRoot": True,
                            },
                        }
                    ],
                },
            },
        },
    }


async def apply(
    found: list[Manifest], dry_run: bool = False, allow_unsafe_crd: bool = False
) -> list[str]:
    """Server-side apply every manifest in order, with the kubeconfig's (or the pod's)
    credentials; says for each ``kind/name`` what happened. A dry run cannot check objects
    in a namespace that does not exist yet (the server refuses them): it says so instead.
    A CRD change that would break stored Models (``crd_upgrade``) is refused, before anything
    is applied, unless ``allow_unsafe_crd``."""
    from lightkube import ApiError
    from lightkube.codecs import from_dict
    from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
    from lightkube.resources.core_v1 import Namespace

    from modelplane.backends.kubernetes.connecting import connected
    from modelplane.backends.kubernetes.crd_upgrade import unsafe_changes

    said, missing = [], set()
    async with connected("modelplane-install") as client:
        for manifest in found:
            if manifest["kind"] != "CustomResourceDefinition" or allow_unsafe_crd:
                continue
            try:
                live = await client.get(CustomResourceDefinition, manifest["metadata"]["name"])
            except ApiError as exc:
                if exc.status.code == 404:
                    continue  # a first install
                raise KubernetesError(f"reading the live CRD: {exc.status.message}") from exc
            problems = unsafe_changes(live.to_dict(), manifest)
            if problems:
                raise KubernetesError(
                    f"CustomResourceDefinition/{manifest['metadata']['name']}: the upgrade would "
                    "break stored Models, so nothing was applied:\n  - "
                    + "\n  - ".join(problems)
                    + "\n(--allow-unsafe-crd applies it anyway)"
                )
        for manifest in found:
            name = f"{manifest['kind']}/{manifest['metadata']['name']}"
            namespace = manifest["metadata"].get("namespace")
            if dry_run and manifest["kind"] == "Namespace":
                try:
                    await client.get(Namespace, manifest["metadata"]["name"])
                except ApiError as exc:
                    if exc.status.code != 404:
                        raise KubernetesError(f"{name}: {exc.status.message}") from exc
                    missing.add(manifest["metadata"]["name"])
            if dry_run and namespace in missing:
                said.append(f"{name} not checked: namespace {namespace} does not exist yet")
                continue
            try:
                await client.apply(from_dict(manifest), force=True, dry_run=dry_run)
            except ApiError as exc:
                raise KubernetesError(f"{name}: {exc.status.message}") from exc
            said.append(f"{name} {'checked (dry run)' if dry_run else 'applied'}")
    return said


_HEADER = "# Rendered by scripts/render-deploy from modelplane.backends.kubernetes.install.\n"
KUSTOMIZE_FILES = {
    "crd.yaml": ("CustomResourceDefinition",),
    "namespace.yaml": ("Namespace",),
    "rbac.yaml": ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"),
    "operator.yaml": (NAME,),
    "gateway.yaml": (GATEWAY,),
}


def kustomize_base(options: InstallOptions) -> dict[str, str]:
    """The files of ``deploy/kustomize``: the install manifests grouped by concern, and the
    ``kustomization.yaml`` that lists them."""
    import yaml

    found = manifests(options)
    header = _HEADER
    files = {
        name: header + yaml.safe_dump_all([m for m in found if _in_file(m, kinds)], sort_keys=False)
        for name, kinds in KUSTOMIZE_FILES.items()
    }
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(KUSTOMIZE_FILES),
    }
    files["kustomization.yaml"] = header + yaml.safe_dump(kustomization, sort_keys=False)
    return files


def _in_file(manifest: Manifest, wanted: tuple[str, ...]) -> bool:
    """Workloads (Deployment, Service, PodDisruptionBudget) go by the component they run; all
    else by kind."""
    if manifest["kind"] in ("Deployment", "Service", "PodDisruptionBudget"):
        return manifest["metadata"]["name"] in wanted
    return manifest["kind"] in wanted


def helm_crds() -> dict[str, str]:
    """The Helm chart's ``crds/`` directory: the Model CRD."""
    import yaml

    header = "# Rendered by scripts/render-deploy from modelplane.api.schema.\n"
    return {"models.modelplane.io.yaml": header + yaml.safe_dump(crd(), sort_keys=False)}
