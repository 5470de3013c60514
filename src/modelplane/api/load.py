"""What a gateway tells the autoscaler: per model, requests held for a cold start, in flight per
revision, and how long since the last request. On a cluster, gateways send it to the operator."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from modelplane.api.meta import Wire

Count = Annotated[int, Field(ge=0)]


class ModelLoad(Wire):
    held: Count = 0
    idle_seconds: Annotated[float, Field(ge=0)] | None = None  # None: no request yet
    in_flight: dict[str, Count] = Field(default_factory=dict)
    # LoRA adapters its replicas could not load, and why (api/adapters.py).
    failed_adapters: dict[str, str] = Field(default_factory=dict)


class LoadReport(Wire):
    gateway: Annotated[str, Field(min_length=1, max_length=253)]
    models: dict[str, ModelLoad] = Field(default_factory=dict)
