"""Each team's usage as Prometheus counters on the platform's ``/metrics`` (the embedded
gateway's registry), read at scrape from the usage record: what is kept and what accrued since
the last flush, so the counters go on across restarts.

- ``modelplane_usage_replica_seconds_total{namespace, model, revision}``: replicas starting or
  ready; ``modelplane_usage_cpu_core_seconds_total``, ``..._memory_gib_seconds_total`` and
  ``..._accelerator_seconds_total``: the same, weighted by what each replica requested.
- ``modelplane_usage_tokens_total{namespace, model, kind}``: ``prompt`` and ``completion``
  tokens of the OpenAI API answers (the gateway's requests are
  ``modelplane_gateway_requests_total``, by the Model's key).

``namespace`` is named as OpenCost's and kube-state-metrics' series name it, so a cost per team
joins on it; ``model`` is the Model's name, the ``modelplane.io/model`` label of its pods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from modelplane.backends.local.usage_rollup import Usage

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
        tokens: dict[tuple[str, str, str], int] = {}
        for (namespace, model, _), used in found:
            for kind, count in (("prompt", used.prompt_tokens),
                                ("completion", used.completion_tokens)):  # fmt: skip
                tokens[(namespace, model, kind)] = tokens.get((namespace, model, kind), 0) + count
        family = CounterMetricFamily(
            "modelplane_usage_tokens",
            "Tokens of the Model's OpenAI API answers, by kind: prompt (input) or completion.",
            labels=["namespace", "model", "kind"],
        )
        for labels, count in sorted(tokens.items()):
            family.add_metric(list(labels), count)
        yield family
