"""Prometheus rules for every Model's SLO: recording rules for the error ratio over each window,
from what clients saw at the gateways (``modelplane_gateway_requests_total``), and the
multiwindow, multi-burn-rate alerts of ``control.slo`` (page and ticket). Rendered by
``scripts/render-deploy`` into ``deploy/prometheus/slo-rules.yaml`` and, as a PrometheusRule,
into ``deploy/prometheus-operator``.

Each Model is judged against its own objective, ``modelplane_slo_objective_ratio`` (exported by
the embedded platform's gateway and by the operator), so only Models with an SLO alert. The
windows are the workbook's for a 30-day objective; ``window`` renders them scaled for another
(the tests use a short one). The controller measures each Model over its own window either way.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from modelplane.control.slo import REFERENCE_WINDOW, Severity, alerts_for, period
from modelplane.telemetry import names

ALERT = "ModelplaneErrorBudgetBurn"
BUDGET = "model:modelplane_slo_error_budget:ratio"
BUDGET_REMAINING = "model:modelplane_slo_error_budget:remaining"
RULES_NAME = "modelplane-slo"

Rules = dict[str, Any]


def error_ratio(span: timedelta) -> str:
    """The recording rule's name for the error ratio over ``span``."""
    return f"model:{names.GATEWAY_REQUESTS}:error_ratio_rate{period(span)}"


def slo_rules(window: timedelta = REFERENCE_WINDOW) -> Rules:
    """The rule groups, as a Prometheus rule file holds them."""
    alerts = alerts_for(window)
    spans = sorted({s for a in alerts for s in (a.long, a.short)} | {window})
    requests = f"{names.GATEWAY_REQUESTS}_total"
    recording = [
        {
            "record": error_ratio(span),
            # No error series yet (a healthy Model): a ratio of 0, not no data.
            "expr": (
                f'(sum by (model) (rate({requests}{{outcome="error"}}[{period(span)}])) '
                f"or 0 * sum by (model) (rate({requests}[{period(span)}])))\n"
                f"/ sum by (model) (rate({requests}[{period(span)}]))"
            ),
        }
        for span in spans
    ]
    recording += [
        {"record": BUDGET, "expr": f"1 - max by (model) ({names.SLO_OBJECTIVE})"},
        {"record": BUDGET_REMAINING, "expr": f"1 - {error_ratio(window)} / on (model) {BUDGET}"},
    ]
    return {
        "groups": [
            {"name": f"{RULES_NAME}-recording", "rules": recording},
            {"name": f"{RULES_NAME}-alerts", "rules": [_alert(s, window) for s in Severity]},
        ]
    }


def _alert(severity: Severity, window: timedelta) -> Rules:
    chosen = [a for a in alerts_for(window) if a.severity is severity]
    burning = "\nor\n".join(
        f"(\n  {error_ratio(a.long)} > on (model) ({a.factor:g} * {BUDGET})\n"
        f"and\n  {error_ratio(a.short)} > on (model) ({a.factor:g} * {BUDGET})\n)"
        for a in chosen
    )
    over = "; ".join(a.describe() for a in chosen)
    return {
        "alert": ALERT,
        "expr": burning,
        "labels": {"severity": severity.value},
        "annotations": {
            "summary": "{{ $labels.model }} burns its error budget too fast",
            "description": (
                "{{ $labels.model }} fails {{ $value | humanizePercentage }} of its requests, "
                f"burning its {period(window)} error budget faster than the {severity.value} "
                f"threshold ({over})."
            ),
        },
    }


def dump_yaml(*documents: Any) -> str:
    """``documents`` as YAML, expressions over several lines as literal blocks (as written)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump_all(documents, Dumper=Dumper, sort_keys=False, width=100)
