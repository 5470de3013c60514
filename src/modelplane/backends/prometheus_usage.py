"""Each team's usage from Prometheus, for a platform that keeps no usage record of its own (a
cluster): the ``modelplane_usage_*`` counters (``usage_metrics.py``) that the operator (replica
time) and every gateway (requests, tokens) export, summed per namespace, Model and revision over
each step of a period with ``increase()``, as the rows the usage report is made of. The same
counters are on the embedded platform's ``/metrics``, so the same reading works there too.

What Prometheus gives is what it scraped: ``increase()`` extrapolates to each step's edges and
counts across counter resets (a new operator leader, a restarted gateway), and usage between a
process's last scrape and its end is not seen."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import httpx

from modelplane.backends.prometheus import escape
from modelplane.backends.usage_rollup import COLUMNS, Key, Usage
from modelplane.errors import MetricsUnavailableError

# Each figure of a report: the counter it is read from, and which of its series.
SERIES: Mapping[str, tuple[str, str]] = {
    "replica_seconds": ("modelplane_usage_replica_seconds_total", ""),
    "cpu_core_seconds": ("modelplane_usage_cpu_core_seconds_total", ""),
    "memory_gib_seconds": ("modelplane_usage_memory_gib_seconds_total", ""),
    "accelerator_seconds": ("modelplane_usage_accelerator_seconds_total", ""),
    "requests": ("modelplane_usage_requests_total", ""),
    "client_errors": ("modelplane_usage_requests_total", 'class="client_error"'),
    "server_errors": ("modelplane_usage_requests_total", 'class="server_error"'),
    "prompt_tokens": ("modelplane_usage_tokens_total", 'kind="prompt"'),
    "completion_tokens": ("modelplane_usage_tokens_total", 'kind="completion"'),
}
COUNTS = frozenset({"requests", "client_errors", "server_errors", "prompt_tokens",
                    "completion_tokens"})  # fmt: skip
assert set(SERIES) == set(COLUMNS), "every figure of Usage is read"


def usage_rows(
    url: str,
    namespace: str | None,
    start: int,
    step: int,
    now: float,
    client: httpx.Client | None = None,
) -> list[tuple[Key, Usage]]:
    """Usage from ``start`` to ``now`` (seconds since the epoch) per ``step`` seconds, of
    ``namespace`` (None: every one), each row keyed by its step's first second;
    MetricsUnavailableError when Prometheus cannot answer."""
    owned = client is None
    http = client or httpx.Client(timeout=30)
    # Each evaluation at t sums (t - step, t]; the last runs past now and counts up to it.
    end = start + max(1, math.ceil((now - start) / step)) * step
    rows: dict[Key, Usage] = {}
    try:
        for figure, (series, which) in SERIES.items():
            matchers = [f'namespace="{escape(namespace)}"'] if namespace is not None else []
            matchers += [which] if which else []
            query = (
                f"sum by (namespace, model, revision) "
                f"(increase({series}{{{','.join(matchers)}}}[{step}s]))"
            )
            for labels, at, value in _range(http, url, query, start + step, end, step):
                key = (labels["namespace"], labels["model"], labels["revision"], at - step)
                number = round(value) if figure in COUNTS else value
                setattr(rows.setdefault(key, Usage()), figure, number)
    finally:
        if owned:
            http.close()
    return [(key, used) for key, used in sorted(rows.items()) if _any(used)]


def _any(used: Usage) -> bool:
    return any(getattr(used, column) for column in COLUMNS)


def _range(
    http: httpx.Client, url: str, query: str, start: int, end: int, step: int
) -> list[tuple[dict[str, str], int, float]]:
    try:
        reply = http.get(
            f"{url.rstrip('/')}/api/v1/query_range",
            params={"query": query, "start": start, "end": end, "step": step},
        )
        body: dict[str, Any] = reply.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise MetricsUnavailableError(f"Prometheus at {url} cannot be read: {exc}") from exc
    if body.get("status") != "success":
        said = body.get("error") or f"HTTP {reply.status_code}"
        raise MetricsUnavailableError(f"Prometheus at {url} refused {query!r}: {said}")
    return [
        (series["metric"], int(float(at)), float(value))
        for series in body["data"]["result"]
        for at, value in series["values"]
        if value not in ("NaN", "+Inf", "-Inf")
    ]
