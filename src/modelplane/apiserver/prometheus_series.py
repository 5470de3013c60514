"""A model's recent traffic per revision from Prometheus, for the metrics API and the portal's
charts when the platform has a Prometheus (``modelplane up --with-prometheus`` or
``--prometheus URL``): its history outlives a restart of the platform, and on a cluster it
sums every gateway. Range queries over the gateway's per-revision counters, the same ones the
rollout analysis reads.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import httpx

from modelplane.errors import MetricsUnavailableError
from modelplane.telemetry import names

Points = dict[str, dict[float, dict[str, float | None]]]  # revision -> time -> field -> value


class PrometheusSeries:
    def __init__(self, url: str, step: float, span: float, client: httpx.AsyncClient | None = None):
        self.url = url.rstrip("/")
        self.step, self.span = step, span
        self._client = client or httpx.AsyncClient(timeout=5.0)

    async def close(self) -> None:
        await self._client.aclose()

    def _queries(self, model: str) -> dict[str, str]:
        selector = f'{names.LABEL_MODEL}="{_escape(model)}"'
        window = f"{int(max(4 * self.step, 8))}s"  # several scrapes, so a rate always has two
        by = names.LABEL_REVISION
        requests = f"{names.ANALYSIS_REQUESTS}_total"
        buckets = f"{names.ANALYSIS_REQUEST_DURATION}_bucket"

        def quantile(q: float) -> str:
            rates = f"sum by ({by}, le) (rate({buckets}{{{selector}}}[{window}]))"
            return f"1000 * histogram_quantile({q}, {rates})"

        rate = f"sum by ({by}) (rate({requests}{{{selector}}}[{window}]))"
        failed = f'{selector},{names.LABEL_OUTCOME}="error"'
        errors = f"sum by ({by}) (rate({requests}{{{failed}}}[{window}]))"
        return {
            "requestsPerSecond": rate,
            "errorRate": f"{errors} / ({rate} > 0)",  # no point where there were no requests
            "p50Ms": quantile(0.5),
            "p99Ms": quantile(0.99),
        }

    async def points(self, model: str, now: float) -> Points:
        """Every revision's points over the span, by time; MetricsUnavailableError if
        Prometheus cannot answer."""
        queries = self._queries(model)
        answers = await asyncio.gather(*(self._range(q, now) for q in queries.values()))
        found: Points = {}
        for field, answer in zip(queries, answers, strict=True):
            for revision, values in answer.items():
                for time, value in values:
                    point = found.setdefault(revision, {}).setdefault(time, {})
                    point[field] = None if math.isnan(value) else round(value, 4)
        return found

    async def _range(self, query: str, now: float) -> dict[str, list[tuple[float, float]]]:
        params = {"query": query, "start": f"{now - self.span:.3f}", "end": f"{now:.3f}",
                  "step": f"{self.step:g}"}  # fmt: skip
        try:
            reply = await self._client.get(f"{self.url}/api/v1/query_range", params=params)
            body: Any = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise MetricsUnavailableError(f"prometheus at {self.url}: {exc}") from exc
        if not isinstance(body, dict) or body.get("status") != "success":
            raise MetricsUnavailableError(f"prometheus at {self.url} refused {query!r}")
        try:
            return {
                series["metric"].get(names.LABEL_REVISION, ""): [
                    (float(t), float(v)) for t, v in series["values"]
                ]
                for series in body["data"]["result"]
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise MetricsUnavailableError(f"prometheus at {self.url}: unexpected {exc!r}") from exc


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
