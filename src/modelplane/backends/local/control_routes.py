"""Every route of the embedded control API beyond the Models themselves, in one list: the
platform serves exactly these, and the OpenAPI description is checked against them."""

from __future__ import annotations

from starlette.routing import BaseRoute

from modelplane.backends.local.gitops_sources import GitSources, gitops_routes
from modelplane.backends.local.key_api import key_routes
from modelplane.backends.local.key_store import SqliteKeyStore
from modelplane.backends.local.metric_history import MetricHistory, metrics_routes
from modelplane.backends.local.openapi import openapi_route
from modelplane.backends.local.quota_api import SqliteQuotaStore, quota_routes
from modelplane.backends.local.store import SqliteStore
from modelplane.backends.prometheus_series import PrometheusSeries
from modelplane.gateway.quotas import Quotas


def control_routes(
    store: SqliteStore,
    history: MetricHistory,
    sources: GitSources,
    quotas: SqliteQuotaStore,
    enforced: Quotas,
    keys: SqliteKeyStore | None,
    prometheus: PrometheusSeries | None = None,
) -> list[BaseRoute]:
    """The description, metrics, git sources, quotas and (with auth) API keys."""
    return [
        openapi_route(auth=keys is not None),
        *metrics_routes(history, store, prometheus),
        *gitops_routes(sources, auth=keys is not None),
        *quota_routes(quotas, enforced),
        *(key_routes(keys) if keys is not None else []),
    ]
