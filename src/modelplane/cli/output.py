"""kubectl-style output: aligned columns, ages, and yaml/json dumps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from modelplane.api import Model
from modelplane.control.conditions import READY, condition


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    lines = ["   ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
             for row in [headers, *rows]]  # fmt: skip
    return "\n".join(lines)


def age(since: datetime | None, now: datetime | None = None) -> str:
    if since is None:
        return "<unknown>"
    seconds = int(((now or datetime.now(UTC)) - since).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def ready_columns(model: Model) -> tuple[str, str]:
    found = condition(model.status.conditions, READY)
    return (found.status.value, found.reason) if found else ("Unknown", "Pending")


def traffic(model: Model) -> str:
    split = [f"{r.name}={r.traffic}%" for r in model.status.revisions if r.traffic]
    return ",".join(split) or "-"


def replicas(model: Model) -> str:
    ready = sum(r.ready_replicas for r in model.status.revisions)
    total = sum(r.replicas for r in model.status.revisions)
    return f"{ready}/{total}"


def models_table(models: Sequence[Model], *, wide: bool, all_namespaces: bool) -> str:
    headers = ["NAME", "READY", "REASON", "URL", "AGE"]
    if wide:
        headers += ["STABLE", "TRAFFIC", "REPLICAS", "FORMAT"]
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
    rows = []
    for model in models:
        status, reason = ready_columns(model)
        row = [
            model.metadata.name,
            status,
            reason,
            model.status.url or "-",
            age(model.metadata.creation_timestamp),
        ]
        if wide:
            row += [
                model.status.stable_revision or "-",
                traffic(model),
                replicas(model),
                model.spec.format.value,
            ]
        if all_namespaces:
            row.insert(0, model.metadata.namespace)
        rows.append(row)
    return table(headers, rows)
