"""Prometheus rules for every Model's SLO: recording rules for the error ratio over each window,
from what clients saw at the gateways (``modelplane_gateway_requests_total``), and for the share
slower than the latency objective (``modelplane_gateway_request_duration_seconds``), and the
multiwindow, multi-burn-rate alerts of ``control.slo`` (page and ticket) on each budget. Rendered by
``scripts/render-deploy`` into ``deploy/prometheus/slo-rules.yaml`` and, as a PrometheusRule,
into ``deploy/prometheus-operator``.

Each Model is judged against its own objectives, ``modelplane_slo_objective_ratio`` and
``modelplane_slo_latency_objective_ratio`` (exported by the embedded platform's gateway and by
the operator; the latter names the duration bucket of the Model's threshold), so only Models
with an SLO alert, and only those with ``latencyP99Ms`` on latency. The
windows are the workbook's for a 30-day objective; ``window`` renders them scaled for another
(the tests use a short one). The controller measures each Model over its own window either way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from modelplane.control.slo import REFERENCE_WINDOW, Severity, alerts_for, period
from modelplane.telemetry import names

ALERT = "ModelplaneErrorBudgetBurn"
LATENCY_ALERT = "ModelplaneLatencyBudgetBurn"
BUDGET = "model:modelplane_slo_error_budget:ratio"
BUDGET_REMAINING = "model:modelplane_slo_error_budget:remaining"
LATENCY_BUDGET = "model:modelplane_slo_latency_budget:ratio"
LATENCY_BUDGET_REMAINING = "model:modelplane_slo_latency_budget:remaining"
RULES_NAME = "modelplane-slo"

Rules = dict[str, Any]


def error_ratio(span: timedelta) -> str:
    """The recording rule's name for the error ratio over ``span``."""
    return f"model:{names.GATEWAY_REQUESTS}:error_ratio_rate{period(span)}"


def slow_ratio(span: timedelta) -> str:
    """The recording rule's name for the share slower than the latency objective over ``span``."""
    return f"model:{names.GATEWAY_REQUEST_DURATION}:slow_ratio_rate{period(span)}"


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
    duration = names.GATEWAY_REQUEST_DURATION
    recording += [
        {
            "record": slow_ratio(span),
            # The bucket of each Model's threshold, picked by the objective's le label.
            "expr": (
                f"1 - sum by (model) (\n"
                f"  sum by (model, le) (rate({duration}_bucket[{period(span)}]))\n"
                f"  * on (model, le) (0 * {names.SLO_LATENCY_OBJECTIVE} + 1)\n"
                f")\n/ sum by (model) (rate({duration}_count[{period(span)}]))"
            ),
        }
        for span in spans
    ]
    recording += [
        {"record": BUDGET, "expr": f"1 - max by (model) ({names.SLO_OBJECTIVE})"},
        {"record": BUDGET_REMAINING, "expr": f"1 - {error_ratio(window)} / on (model) {BUDGET}"},
        {
            "record": LATENCY_BUDGET,
            "expr": f"1 - max by (model) ({names.SLO_LATENCY_OBJECTIVE})",
        },
        {
            "record": LATENCY_BUDGET_REMAINING,
            "expr": f"1 - {slow_ratio(window)} / on (model) {LATENCY_BUDGET}",
        },
    ]
    alerting = [_alert(ALERT, error_ratio, BUDGET, s, window) for s in Severity]
    alerting += [_alert(LATENCY_ALERT, slow_ratio, LATENCY_BUDGET, s, window) for s in Severity]
    return {
        "groups": [
            {"name": f"{RULES_NAME}-recording", "rules": recording},
            {"name": f"{RULES_NAME}-alerts", "rules": alerting},
        ]
    }


_SAID = {
    ALERT: ("burns its error budget too fast", "fails", "error budget"),
    LATENCY_ALERT: ("burns its latency budget too fast", "answers too slowly", "latency budget"),
}


def _alert(
    name: str,
    ratio: Callable[[timedelta], str],
    budget: str,
    severity: Severity,
    window: timedelta,
) -> Rules:
    chosen = [a for a in alerts_for(window) if a.severity is severity]
    burning = "\nor\n".join(
        f"(\n  {ratio(a.long)} > on (model) ({a.factor:g} * {budget})\n"
        f"and\n  {ratio(a.short)} > on (model) ({a.factor:g} * {budget})\n)"
        for a in chosen
    )
    over = "; ".join(a.describe() for a in chosen)
    summary, doing, which = _SAID[name]
    return {
        "alert": name,
        "expr": burning,
        "labels": {"severity": severity.value},
        "annotations": {
            "summary": "{{ $labels.model }} " + summary,
            "description": (
                "{{ $labels.model }} " + doing + " {{ $value | humanizePercentage }} of its "
                f"requests, burning its {period(window)} {which} faster than the "
                f"{severity.value} threshold ({over})."
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
