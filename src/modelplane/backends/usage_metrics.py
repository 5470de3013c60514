"""Each team's usage as Prometheus counters, read at scrape: embedded, on the gateway's
``/metrics`` from the usage record (what is kept and what accrued since the last flush, so the
counters go on across restarts); on a cluster, from what the operator (replicas) and each gateway
(answers) counted since they started (``usage_tally.py``), which Prometheus keeps.

- ``modelplane_usage_replica_seconds_total{namespace, model, revision}``: replicas starting or
  ready; ``modelplane_usage_cpu_core_seconds_total``, ``..._memory_gib_seconds_total`` and
  ``..._accelerator_seconds_total``: the same, weighted by what each replica requested.
- ``modelplane_usage_requests_total{namespace, model, revision, class}``: requests a replica
  answered or failed, by ``class``: ``ok``, ``client_error`` (4xx), ``server_error`` (5xx).
- ``modelplane_usage_tokens_total{namespace, model, revision, kind}``: ``prompt`` and
  ``completion`` tokens of the OpenAI API answers.

``namespace`` is named as OpenCost's and kube-state-metrics' series name it, so a cost per team
joins on it; ``model`` is the Model's name, the ``modelplane.io/model`` label of its pods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from modelplane.backends.usage_rollup import Usage

Totals = Mapping[tuple[str, str, str], Usage]  # per namespace, Model and revision
HELD = (
    ("replica_seconds", "modelplane_usage_replica_seconds",
     "Seconds the Model's replicas existed, starting or ready."),
    ("cpu_core_seconds", "modelplane_usage_cpu_core_seconds",
     "Replica-seconds times the CPU cores each replica requested."),
    ("memory_gib_seconds", "modelplane_usage_memory_gib_seconds",
     "Replica-seconds times the memory (GiB) each replica requested."),
    ("accelerator_seconds", "modelplane_usage_accelerator_seconds",
     "Replica-seconds times the accelerators each replica requested."),
)  # fmt: skip
REVISION_LABELS = ["namespace", "model", "revision"]


class UsageCollector(Collector):
    def __init__(self, totals: Callable[[], Totals]) -> None:
        self.totals = totals

    def describe(self) -> Iterable[Metric]:
        return []  # computed at scrape: registering must not read the record

    def collect(self) -> Iterator[Metric]:
        found = sorted(self.totals().items())
        for field, name, about in HELD:
            family = CounterMetricFamily(name, about, labels=REVISION_LABELS)
            for labels, used in found:
                family.add_metric(list(labels), getattr(used, field))
            yield family
        requests = CounterMetricFamily(
            "modelplane_usage_requests",
            "Requests a replica of the Model answered or failed, by class: ok, client_error "
            "(4xx), server_error (5xx or no answer).",
            labels=[*REVISION_LABELS, "class"],
        )
        tokens = CounterMetricFamily(
            "modelplane_usage_tokens",
            "Tokens of the Model's OpenAI API answers, by kind: prompt (input) or completion.",
            labels=[*REVISION_LABELS, "kind"],
        )
        for labels, used in found:
            ok = used.requests - used.client_errors - used.server_errors
            for kind, count in (("ok", ok), ("client_error", used.client_errors),
                                ("server_error", used.server_errors)):  # fmt: skip
                requests.add_metric([*labels, kind], count)
            tokens.add_metric([*labels, "prompt"], used.prompt_tokens)
            tokens.add_metric([*labels, "completion"], used.completion_tokens)
        yield requests
        yield tokens
