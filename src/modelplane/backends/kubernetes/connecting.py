"""A Kubernetes API client from the kubeconfig (``KUBECONFIG``, ``~/.kube/config``) or the pod's
ServiceAccount, with missing credentials and an unreachable server as one clear error."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx2
from lightkube import AsyncClient, ConfigError

from modelplane.errors import KubernetesError


@contextlib.asynccontextmanager
async def connected(field_manager: str) -> AsyncIterator[AsyncClient]:
    try:
        client = AsyncClient(field_manager=field_manager)
    except ConfigError as exc:
        raise KubernetesError(
            f"no Kubernetes credentials: {exc} (set KUBECONFIG, or run in a pod)"
        ) from exc
    try:
        async with client:
            yield client
    except httpx2.TransportError as exc:
        raise KubernetesError(f"cannot reach the Kubernetes API server: {exc}") from exc
