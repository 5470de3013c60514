"""The node cache on a cluster (``modelplane install --node-cache``): an agent on every node,
in a namespace of its own, which is the one place that needs more than the `restricted` Pod
Security Standard: a hostPath, to outlive the pods it serves. It runs as root only to own that
directory (every capability dropped, no privilege escalation, a read-only root filesystem), has
no ServiceAccount token and no RBAC at all, and answers each pod on its own node only (a Service
with ``internalTrafficPolicy: Local``). Model pods stay `restricted`: they reach it over HTTP."""

from __future__ import annotations

from typing import Any

NAMESPACE = "modelplane-node-cache"
NAME = "modelplane-node-cache"
PORT = 8071
HOST_DIR = "/var/lib/modelplane/node-cache"
URL = f"http://{NAME}.{NAMESPACE}.svc:{PORT}"
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - the pods of its node reach it

Manifest = dict[str, Any]


def node_cache_manifests(image: str, labels: dict[str, str], size: str = "100Gi") -> list[Manifest]:
    meta = {"name": NAME, "namespace": NAMESPACE, "labels": labels}
    selector = {"app.kubernetes.io/name": NAME}
    pss = {
        "pod-security.kubernetes.io/enforce": "privileged",  # a hostPath volume
        "pod-security.kubernetes.io/warn": "baseline",
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": NAMESPACE, "labels": {**labels, **pss}}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta,
         "automountServiceAccountToken": False},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta,
         "spec": {"selector": {"matchLabels": selector},
                  "updateStrategy": {"type": "RollingUpdate"},
                  "template": {"metadata": {"labels": {**labels, **selector}},
                               "spec": _pod(image, size)}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"selector": selector, "internalTrafficPolicy": "Local",
                  "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]}},
    ]  # fmt: skip


def _pod(image: str, size: str) -> Manifest:
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    return {
        "serviceAccountName": NAME,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "node-cache",
                "image": image,
                "args": [
                    *("node-cache", "--host", ALL_INTERFACES, "--port", str(PORT)),
                    *("--cache-dir", "/cache", "--cache-size", size),
                ],
                "ports": [{"name": "http", "containerPort": PORT}],
                "livenessProbe": probe,
                "readinessProbe": probe,
                "resources": {
                    "requests": {"cpu": "100m", "memory": "256Mi"},
                    "limits": {"memory": "1Gi"},
                },
                "securityContext": {
                    "runAsUser": 0,  # owns the hostPath the kubelet makes; no capability needed
                    "runAsNonRoot": False,
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "readOnlyRootFilesystem": True,
                },
                "volumeMounts": [
                    {"name": "cache", "mountPath": "/cache"},
                    {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - its own emptyDir
                ],
            }
        ],
        "volumes": [
            {"name": "cache", "hostPath": {"path": HOST_DIR, "type": "DirectoryOrCreate"}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
