"""How routes reach a gateway: the protocol both backends publish through (the embedded
controller in process, the cluster gateway's discovery from the Kubernetes API), so neither
knows the gateway's routing table beyond it."""

from __future__ import annotations

from typing import Protocol

EndpointList = list[tuple[str, str]]  # (endpoint id, base URL)
ShadowRoute = tuple[str, float, str]  # (canary revision, percent of requests mirrored, task)


class RouteSink(Protocol):
    """Where routes go: a gateway's routing table."""

    def publish(
        self,
        key: str,
        name: str,
        revisions: dict[str, tuple[int, EndpointList]],
        shadow: ShadowRoute | None = None,
        canary: str | None = None,
        *,
        openai: bool = False,
        adapters: tuple[str, ...] = (),
    ) -> None:
        """A model's route: revision -> (weight, endpoints). ``shadow``: the revision that
        mirrored requests go to; ``canary``: the revision on trial, whose failed requests are
        retried on the others; ``openai``: whether the model speaks the OpenAI API;
        ``adapters``: the names of its LoRA adapters, which clients use as model names."""
        ...

    def remove(self, key: str) -> None: ...
