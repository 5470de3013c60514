"""The AdaptersReady condition: what replicas could not load, said on the Model and once."""

from __future__ import annotations

from dataclasses import replace

from modelplane.api import Adapter, Model, Source
from modelplane.control.planning import Observed, plan
from tests.control.test_planning import NOW, ready, reasons, revision_of
from tests.models import onnx_model


def with_adapters(*names: str) -> Model:
    model = onnx_model()
    model.spec.adapters = [Adapter(name=n, source=Source(uri=f"file:///{n}.gguf")) for n in names]
    return model


def test_a_failed_adapter_makes_adapters_ready_false_naming_it_once() -> None:
    model = with_adapters("pirate", "poet")
    observed = Observed(revisions=(revision_of(model),), replicas=(ready("iris-r1"),))
    first = plan(model, observed, NOW)
    told = next(c for c in first.plan.status.conditions if c.type == "AdaptersReady")
    assert (told.status, told.reason) == ("True", "AdaptersListed")
    model.status = first.plan.status
    why = {"poet": "adapter 'poet' of model 'iris' is unavailable: no such file", "gone": "x"}
    failing = replace(observed, reported=first.reported, adapter_failures=why)
    second = plan(model, failing, NOW)
    told = next(c for c in second.plan.status.conditions if c.type == "AdaptersReady")
    assert (told.status, told.reason) == ("False", "AdapterUnavailable")
    assert "adapter 'poet'" in told.message
    assert "gone" not in told.message  # not listed: not this Model's concern
    assert "AdapterUnavailable" in reasons(second)
    assert model.status.conditions != second.plan.status.conditions
    model.status = second.plan.status
    assert "AdapterUnavailable" not in reasons(plan(model, failing, NOW))  # said once


def test_a_model_without_adapters_has_no_such_condition() -> None:
    model = with_adapters("pirate")
    observed = Observed(revisions=(revision_of(model),), replicas=(ready("iris-r1"),))
    model.status = plan(model, observed, NOW).plan.status
    model.spec.adapters = []
    conditions = plan(model, observed, NOW).plan.status.conditions
    assert "AdaptersReady" not in [c.type for c in conditions]
