"""What ``modelplane install`` puts on a cluster, as manifests: the Model CRD, the operator's
namespace, ServiceAccount, least-privilege RBAC and Deployment. ``deploy/kustomize`` holds the
same objects, rendered from here (``scripts/render-deploy``), so the two never drift apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelplane import __version__
from modelplane.api import GROUP, crd
from modelplane.backends.kubernetes.children import LABEL_MANAGED_BY
from modelplane.errors import KubernetesError

Manifest = dict[str, Any]

NAME = "modelplane-operator"
OPERATOR_PORTS = {"metrics": 8080, "healthz": 8081}
WRITE = ["get", "list", "watch", "create", "patch", "update", "delete"]
READ = ["get", "list", "watch"]

# Everything the operator touches, and nothing else: no wildcards, no Secrets.
RULES: list[Manifest] = [
    {"apiGroups": [GROUP], "resources": ["models"], "verbs": READ},
    {"apiGroups": [GROUP], "resources": ["models/status"], "verbs": ["get", "patch", "update"]},
    {"apiGroups": ["apps"], "resources": ["deployments", "controllerrevisions"], "verbs": WRITE},
    {"apiGroups": [""], "resources": ["services"], "verbs": WRITE},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": WRITE},
    {"apiGroups": [""], "resources": ["pods"], "verbs": READ},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "verbs": WRITE},
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "resourceNames": ["httproutes.gateway.networking.k8s.io"],
        "verbs": ["get"],
    },
]


@dataclass(frozen=True)
class InstallOptions:
    namespace: str = "modelplane-system"
    image: str = f"ghcr.io/modelplane/modelplane:{__version__}"
    prometheus: str | None = None


def labels() -> dict[str, str]:
    return {
        "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/part-of": "modelplane",
        "app.kubernetes.io/version": __version__,
        LABEL_MANAGED_BY: "modelplane-install",
    }


def manifests(options: InstallOptions) -> list[Manifest]:
    namespace = options.namespace

    def meta(name: str, namespaced: bool = True) -> Manifest:
        found: Manifest = {"name": name, "labels": labels()}
        if namespaced:
            found["namespace"] = namespace
        return found

    return [
        crd(),
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                **meta(namespace, namespaced=False),
                "labels": {**labels(), "pod-security.kubernetes.io/enforce": "restricted"},
            },
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(NAME)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta(NAME, namespaced=False),
            "rules": RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta(NAME, namespaced=False),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": NAME,
            },
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
        },
        _deployment(options, meta(NAME)),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(NAME),
            "spec": {
                "selector": {"app.kubernetes.io/name": NAME},
                "ports": [{"name": "metrics", "port": 8080, "targetPort": "metrics"}],
            },
        },
    ]


def _deployment(options: InstallOptions, metadata: Manifest) -> Manifest:
    args = ["operator", "--log-level", "info", "--image", options.image]
    if options.prometheus:
        args += ["--prometheus", options.prometheus]
    probe = {"httpGet": {"path": "/healthz", "port": "healthz"}, "periodSeconds": 10}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": 1,
            # One operator at a time: the old one stops before the new one starts.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "template": {
                "metadata": {"labels": labels()},
                "spec": {
                    "serviceAccountName": NAME,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "operator",
                            "image": options.image,
                            "args": args,
                            "ports": [
                                {"name": name, "containerPort": port}
                                for name, port in OPERATOR_PORTS.items()
                            ],
                            "livenessProbe": probe,
                            "readinessProbe": probe,
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


async def apply(found: list[Manifest], dry_run: bool = False) -> list[str]:
    """Server-side apply every manifest in order, with the kubeconfig's (or the pod's)
    credentials; says for each ``kind/name`` what happened. A dry run cannot check objects
    in a namespace that does not exist yet (the server refuses them): it says so instead."""
    from lightkube import ApiError
    from lightkube.codecs import from_dict
    from lightkube.resources.core_v1 import Namespace

    from modelplane.backends.kubernetes.connecting import connected

    said, missing = [], set()
    async with connected("modelplane-install") as client:
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
    "rbac.yaml": ("ServiceAccount", "ClusterRole", "ClusterRoleBinding"),
    "operator.yaml": ("Deployment", "Service"),
}


def kustomize_base(options: InstallOptions) -> dict[str, str]:
    """The files of ``deploy/kustomize``: the install manifests grouped by concern, and the
    ``kustomization.yaml`` that lists them."""
    import yaml

    found = manifests(options)
    header = _HEADER
    files = {
        name: header + yaml.safe_dump_all([m for m in found if m["kind"] in kinds], sort_keys=False)
        for name, kinds in KUSTOMIZE_FILES.items()
    }
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(KUSTOMIZE_FILES),
    }
    files["kustomization.yaml"] = header + yaml.safe_dump(kustomization, sort_keys=False)
    return files


def helm_crds() -> dict[str, str]:
    """The Helm chart's ``crds/`` directory: the Model CRD."""
    import yaml

    header = "# Rendered by scripts/render-deploy from modelplane.api.schema.\n"
    return {"models.modelplane.io.yaml": header + yaml.safe_dump(crd(), sort_keys=False)}
