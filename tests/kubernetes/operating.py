"""A running operator and small kubectl helpers, for the operator's end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modelplane.backends.local.supervisor import die_with_parent
from tests.kubernetes.conftest import condition
from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.processes import free_port, modelplane

# A Model with an https source (kwok runs no containers: nothing fetches it); ``extra`` adds
# lines under ``spec``.
MODEL = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata: {{name: {name}, namespace: default}}
spec:
  source: {{uri: 'https://models.example.com/iris.onnx'}}
  format: onnx
  task: classification
{extra}"""
# One long canary step: a rollout stays in progress while a test looks at it.
LONG_STEP = "  rollout: {steps: [{weight: 10, pauseSeconds: 600}]}\n"


@dataclass
class RunningOperator:
    kubeconfig: Path
    log: Path
    metrics_port: int = field(default_factory=free_port)
    options: tuple[str, ...] = ()  # more `modelplane operator` options

    def __post_init__(self) -> None:
        self.start()

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        self._out = self.log.open("ab")
        self.process = subprocess.Popen(
            modelplane(
                "operator", "--liveness", "", "--metrics-port", str(self.metrics_port),
                "--image", "registry.example.com/modelplane:test", *self.options,
            ),
            env=env, stdout=self._out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
        )  # fmt: skip
        try:
            wait_until(lambda: self.writes() is not None, "operator metrics served")
        except AssertionError:
            self.stop()
            raise

    def writes(self) -> float | None:
        """Writes this operator process made to the API server so far."""
        found = self.writes_by_kind()
        return None if found is None else sum(found.values())

    def writes_by_kind(self) -> Counter[str] | None:
        """Those writes by ``"<verb> <kind>"``; None while metrics are not served yet."""
        return self._counter("modelplane_operator_api_writes", ("verb", "kind"))

    def leading(self) -> bool | None:
        """Whether this process holds the operator's Lease (``--leader-elect``); None while
        metrics are not served yet."""
        found = self._counter("modelplane_operator_leader", ("identity",), suffix="")
        return None if found is None else any(found.values())

    def reconciles(self) -> float | None:
        """Reconcile passes this operator process made so far."""
        found = self._counter("modelplane_operator_reconciles", ())
        return None if found is None else sum(found.values())

    def release_counts(self, namespace: str, name: str) -> dict[str, float]:
        """``modelplane_releases_total`` of one Model on this operator's /metrics, by outcome."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return {
            sample.labels["outcome"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "modelplane_releases_total"
            and (sample.labels["namespace"], sample.labels["model"]) == (namespace, name)
        }

    def _counter(
        self, name: str, by: tuple[str, ...], suffix: str = "_total"
    ) -> Counter[str] | None:
        if self.process.poll() is not None:
            raise AssertionError(f"the operator exited:\n{self.log.read_text()}")
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        except httpx.TransportError:
            return None
        found: Counter[str] = Counter()
        for family in text_string_to_metric_families(text):
            if family.name == name:
                for sample in family.samples:
                    if sample.name == name + suffix:
                        found[" ".join(sample.labels[k] for k in by)] += int(sample.value)
        return found

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()


def operating(kubeconfig: Path, log: Path, *options: str) -> Iterator[RunningOperator]:
    """A module fixture's operator with ``options``, stopped after the module's tests."""
    running = RunningOperator(kubeconfig, log, options=options)
    yield running
    running.stop()


def operating_namespace(kubeconfig: Path, namespace: str, log: Path) -> Iterator[RunningOperator]:
    """A module fixture's operator of ``namespace`` alone."""
    yield from operating(kubeconfig, log, "--namespace", namespace)


def apply(plane: ControlPlane, name: str, extra: str = "", namespace: str = "default") -> None:
    document = MODEL.format(name=name, extra=LONG_STEP + extra)
    document = document.replace("namespace: default", f"namespace: {namespace}")
    plane.kubectl("apply", "-f", "-", input=document, check=True)


def model(plane: ControlPlane, name: str) -> dict[str, Any]:
    found: dict[str, Any] = plane.get_json("mdl", name)
    return found


def ready(plane: ControlPlane, name: str) -> bool:
    return condition(model(plane, name), "Ready") == "True"


def names(plane: ControlPlane, kinds: str, name: str) -> set[str]:
    listed = plane.get_json(kinds, "-l", f"modelplane.io/model={name}")
    return {f"{i['kind']}/{i['metadata']['name']}" for i in listed["items"]}


def events(plane: ControlPlane, name: str) -> list[str]:
    listed = plane.get_json("events", "--field-selector", f"involvedObject.name={name}")
    return [f"{e['reason']}: {e['message']}" for e in listed["items"]]
