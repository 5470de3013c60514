"""Analysis windows from Prometheus, which scrapes the gateways' per-revision metrics.

Used on a cluster, where several gateways serve a model and only Prometheus sees them all; also
usable by ``modelplane up --prometheus URL``. Each window is a set of ``increase()`` queries over
the step so far, summed over gateways; counter resets (a gateway restarting) are handled by
Prometheus itself.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from datetime import datetime

import httpx

from modelplane.control.analysis import Window
from modelplane.errors import MetricsUnavailableError
from modelplane.telemetry import names

# Ask again at most this often per model: the answer only moves once per scrape anyway.
MIN_INTERVAL_SECONDS = 1.0


class PrometheusSource:
    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient | None = None,
        timeout: float = 2.0,
        min_interval: float = MIN_INTERVAL_SECONDS,
    ) -> None:
        self.url = url.rstrip("/")
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._min_interval = min_interval
        # model -> (the window's start, when asked, the answer): reused within min_interval
        self._cache: dict[str, tuple[datetime, float, dict[str, Window]]] = {}

    async def windows(
        self, model: str, revisions: Sequence[str], since: datetime, now: datetime
    ) -> dict[str, Window]:
        span_ms = int((now - since).total_seconds() * 1000)
        if span_ms < 1000:
            return {}
        cached = self._cache.get(model)
        if cached and cached[0] == since and time.monotonic() - cached[1] < self._min_interval:
            found = cached[2]
        else:
            found = await self._query(model, f"{span_ms}ms", now)
            self._cache[model] = (since, time.monotonic(), found)
        return {revision: found[revision] for revision in revisions if revision in found}

    def forget(self, model: str) -> None:
        self._cache.pop(model, None)

    async def close(self) -> None:
        await self._client.aclose()

    async def _query(self, model: str, span: str, now: datetime) -> dict[str, Window]:
        selector = f'{names.LABEL_MODEL}="{escape(model)}"'
        by = names.LABEL_REVISION

        def increase(metric: str, extra: str = "") -> str:
            return f"sum by ({by}) (increase({metric}{{{selector}{extra}}}[{span}]))"

        def p99(histogram: str) -> str:
            return (
                f"histogram_quantile(0.99, sum by ({by}, le) "
                f"(increase({histogram}_bucket{{{selector}}}[{span}])))"
            )

        # Requests and errors in one query: two queries could see different scrapes (one may
        # land between them) and so extrapolate differently, skewing the error rate.
        outcome = names.LABEL_OUTCOME
        queries = {
            "requests": (
                f"sum by ({by}, {outcome}) "
                f"(increase({names.ANALYSIS_REQUESTS}_total{{{selector}}}[{span}]))"
            ),
            "p99": p99(names.ANALYSIS_REQUEST_DURATION),
            "first_token": p99(names.ANALYSIS_FIRST_TOKEN),
            "per_token": p99(names.ANALYSIS_PER_TOKEN),
            "compared": increase(f"{names.SHADOW_DISAGREEMENT}_count"),
            "measures": (
                f"sum by ({by}, {names.LABEL_MEASURE}) "
                f"(increase({names.SHADOW_DISAGREEMENT}_count{{{selector}}}[{span}])) > 0"
            ),
            "disagreement": increase(f"{names.SHADOW_DISAGREEMENT}_sum"),
        }
        answers = await asyncio.gather(*(self._instant(q, now) for q in queries.values()))
        by_outcome = dict(zip(queries, answers, strict=True))
        requests: dict[str, float] = {}
        errors: dict[str, float] = {}
        for (revision, result), value in by_outcome.pop("requests").items():
            requests[revision] = requests.get(revision, 0.0) + value
            if result == "error":
                errors[revision] = errors.get(revision, 0.0) + value
        measures: dict[str, set[str]] = {}
        for revision, measure in by_outcome.pop("measures"):
            measures.setdefault(revision, set()).add(measure)
        values = {q: {rev: v for (rev, _), v in found.items()} for q, found in by_outcome.items()}
        windows = {}
        for revision, total in requests.items():
            compared = values["compared"].get(revision, 0.0)
            windows[revision] = Window(
                requests=round(total),
                errors=round(errors.get(revision, 0.0)),
                p99_ms=_ms(values["p99"].get(revision)),
                compared=round(compared),
                disagreement=values["disagreement"].get(revision, 0.0) / compared
                if compared > 0
                else 0.0,
                first_token_p99_ms=_ms(values["first_token"].get(revision)),
                per_token_p99_ms=_ms(values["per_token"].get(revision)),
                measures=frozenset(measures.get(revision, ())),
            )
        return windows

    async def _instant(self, query: str, at: datetime) -> dict[tuple[str, str], float]:
        """An instant query's vector, as (revision, outcome or measure) -> value; "" where the
        query groups by neither."""
        by = (names.LABEL_REVISION, names.LABEL_OUTCOME, names.LABEL_MEASURE)
        found = await instant(self._client, self.url, query, at, by)
        return {
            (revision, outcome or measure): v for (revision, outcome, measure), v in found.items()
        }


async def instant(
    client: httpx.AsyncClient, url: str, query: str, at: datetime, by: tuple[str, ...]
) -> dict[tuple[str, ...], float]:
    """An instant query's vector at ``at``, each sample keyed by its values of the labels
    ``by`` ("" where it has none); a Prometheus that cannot answer is MetricsUnavailableError."""
    try:
        response = await client.get(
            f"{url}/api/v1/query", params={"query": query, "time": f"{at.timestamp():.3f}"}
        )
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise MetricsUnavailableError(f"prometheus at {url}: {exc}") from exc
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        message = error or f"HTTP {response.status_code}"
        raise MetricsUnavailableError(f"prometheus at {url} refused {query!r}: {message}")
    try:
        return {
            tuple(sample["metric"].get(label, "") for label in by): float(sample["value"][1])
            for sample in body["data"]["result"]
        }
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise MetricsUnavailableError(
            f"prometheus at {url}: unexpected answer to {query!r}: {exc!r}"
        ) from exc


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None or math.isnan(seconds) else seconds * 1000


def escape(value: str) -> str:
    """A label value inside a PromQL string."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
