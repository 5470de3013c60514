"""What a replica is told of its Model's LoRA adapters, and what it reports of them.

Adapters are no part of a revision (``api/revision.py``): the control plane writes the Model's
list where its replicas read it as they run (a file named by :data:`ADAPTERS_FILE_ENV`: kept by
the embedded controller, a mounted ConfigMap on a cluster), so an edit loads, replaces or drops
adapters without starting a replica. Each replica reports, in a header on its answers, the
adapters it holds and those that failed; the gateway prefers replicas that hold the one a
request names, and the control plane turns failures into the Model's ``AdaptersReady``
condition.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from modelplane.api.meta import Wire
from modelplane.api.model import ADAPTER_FORMATS, GENERATIVE_TASKS, Adapter, ModelSpec

ADAPTERS_FILE_ENV = "MODELPLANE_ADAPTERS_FILE"
ADAPTERS_FILE = "adapters.json"  # its name in the mounted ConfigMap on a cluster
ADAPTERS_HEADER = "x-modelplane-adapters"  # a replica's AdapterReport, as JSON
MAX_REASON_CHARS = 300  # of a failure's reason in a report (it travels in a header)


class AdapterList(Wire):
    """The adapters a Model's replicas serve now."""

    adapters: list[Adapter] = Field(default_factory=list)
    max_loaded: Annotated[int, Field(ge=1)] = 4


def adapter_list(spec: ModelSpec) -> AdapterList:
    return AdapterList(adapters=spec.adapters, max_loaded=spec.runtime.max_loaded_adapters)


def serves_adapters(spec: ModelSpec) -> bool:
    """Whether replicas of ``spec`` apply LoRA adapters, and so follow the list as they run:
    an empty list today may be edited later, without a new revision."""
    return (
        spec.format in ADAPTER_FORMATS
        and not spec.engine.external
        and spec.task in GENERATIVE_TASKS
    )


class AdapterReport(Wire):
    """A replica's adapters: those loaded, most recently used first, and why others failed."""

    loaded: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)
