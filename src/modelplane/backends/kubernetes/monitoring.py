"""Scrape configuration for clusters that run the Prometheus Operator: a PodMonitor for model pods
and a ServiceMonitor for the operator and the gateway, and a PrometheusRule with the SLO rules
of ``backends.slo_rules`` (``deploy/prometheus-operator``, rendered from here by
``scripts/render-deploy``).

Series get the labels the embedded platform's scrape targets give them (``job``,
``namespace``, ``modelplane_model``, ``revision``, ``replica``), so the dashboards in
``deploy/grafana`` and the canary analysis's queries read the same on a cluster as on a laptop.
"""

from __future__ import annotations

from modelplane.backends.kubernetes.children import (
    LABEL_MANAGED_BY,
    LABEL_MODEL,
    LABEL_REVISION,
    MANAGER,
)
from modelplane.backends.kubernetes.install import GATEWAY, NAME, Manifest, labels
from modelplane.backends.slo_rules import RULES_NAME, dump_yaml, slo_rules

API_VERSION = "monitoring.coreos.com/v1"
RUNTIME_JOB = "modelplane-runtime"
METRICS_PATH = "/metrics"
INTERVAL = "15s"


def _meta_label(label: str) -> str:
    """How Prometheus's Kubernetes discovery names a pod label (non-alphanumerics become _)."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in label)


def _job(name: str) -> Manifest:
    # The monitor's default job is "<namespace>/<monitor>"; the dashboards select by these.
    return {"action": "replace", "targetLabel": "job", "replacement": name}


def pod_monitor(namespace: str) -> Manifest:
    """Every model pod in every namespace, labelled by model, revision and replica."""
    relabel = [
        _job(RUNTIME_JOB),
        {"sourceLabels": [_meta_label(LABEL_MODEL)], "targetLabel": "modelplane_model"},
        {"sourceLabels": [_meta_label(LABEL_REVISION)], "targetLabel": "revision"},
        {"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "replica"},
    ]
    return {
        "apiVersion": API_VERSION,
        "kind": "PodMonitor",
        "metadata": {"name": RUNTIME_JOB, "namespace": namespace, "labels": labels(RUNTIME_JOB)},
        "spec": {
            "namespaceSelector": {"any": True},
            "selector": {
                "matchLabels": {
                    LABEL_MANAGED_BY: MANAGER,
                    "app.kubernetes.io/component": "model-server",
                }
            },
            "podMetricsEndpoints": [
                {
                    "port": "http",
                    "path": METRICS_PATH,
                    "interval": INTERVAL,
                    "relabelings": relabel,
                }
            ],
        },
    }


def service_monitor(namespace: str, component: str) -> Manifest:
    """The operator's or the gateway's Service in the install namespace."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": {"name": component, "namespace": namespace, "labels": labels(component)},
        "spec": {
            "namespaceSelector": {"matchNames": [namespace]},
            "selector": {"matchLabels": {"app.kubernetes.io/name": component}},
            "endpoints": [
                {
                    "port": "http",
                    "path": METRICS_PATH,
                    "interval": INTERVAL,
                    "relabelings": [_job(component)],
                }
            ],
        },
    }


def monitors(namespace: str) -> list[Manifest]:
    return [
        pod_monitor(namespace),
        service_monitor(namespace, GATEWAY),
        service_monitor(namespace, NAME),
    ]


def prometheus_rule(namespace: str) -> Manifest:
    """Every Model's SLO recording rules and burn-rate alerts."""
    return {
        "apiVersion": API_VERSION,
        "kind": "PrometheusRule",
        "metadata": {"name": RULES_NAME, "namespace": namespace, "labels": labels(RULES_NAME)},
        "spec": slo_rules(),
    }


def monitoring_files(namespace: str) -> dict[str, str]:
    """The files of ``deploy/prometheus-operator``: the monitors, the SLO rules and their
    kustomization."""
    import yaml

    header = "# Rendered by scripts/render-deploy from modelplane.backends.kubernetes.monitoring.\n"
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["monitors.yaml", "slo-rules.yaml"],
    }
    return {
        "monitors.yaml": header + yaml.safe_dump_all(monitors(namespace), sort_keys=False),
        "slo-rules.yaml": header + dump_yaml(prometheus_rule(namespace)),
        "kustomization.yaml": header + yaml.safe_dump(kustomization, sort_keys=False),
    }


def rules_file() -> str:
    """``deploy/prometheus/slo-rules.yaml``: the same rules for a Prometheus's ``rule_files``."""
    header = (
        "# Rendered by scripts/render-deploy from modelplane.backends.slo_rules: every Model's\n"
        "# SLO error ratios and burn-rate alerts, for a Prometheus that scrapes the gateways.\n"
    )
    return header + dump_yaml(slo_rules())
