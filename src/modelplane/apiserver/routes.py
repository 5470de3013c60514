"""Every route of the embedded control API beyond the Models themselves, in one list: the
platform serves exactly these, and the OpenAPI description is checked against them."""

from __future__ import annotations

from starlette.routing import BaseRoute

from modelplane.api.quotas import QuotaBoard
from modelplane.api.store import Store
from modelplane.apiserver.backup import BackupWriter, backup_route
from modelplane.apiserver.git_sources import gitops_routes
from modelplane.apiserver.key_store import SqliteKeyStore
from modelplane.apiserver.keys import key_routes
from modelplane.apiserver.metric_history import MetricHistory, metrics_routes
from modelplane.apiserver.openapi import openapi_route
from modelplane.apiserver.prometheus_series import PrometheusSeries
from modelplane.apiserver.quotas import SqliteQuotaStore, quota_routes
from modelplane.apiserver.releases import release_routes
from modelplane.apiserver.usage import UsageRecord, usage_routes
from modelplane.gitops.sources import GitSources


def control_routes(
    store: Store,
    history: MetricHistory,
    sources: GitSources,
    quotas: SqliteQuotaStore,
    enforced: QuotaBoard,
    keys: SqliteKeyStore | None,
    backup: BackupWriter,
    usage: UsageRecord,
    prometheus: PrometheusSeries | None = None,
) -> list[BaseRoute]:
    """The description, metrics, releases, usage, git sources, quotas, backups and (with auth)
    API keys."""
    return [
        openapi_route(auth=keys is not None),
        backup_route(backup, before=usage.flush),
        *metrics_routes(history, store, prometheus),
        *release_routes(store),
        *usage_routes(usage),
        *gitops_routes(sources, auth=keys is not None),
        *quota_routes(quotas, enforced),
        *(key_routes(keys) if keys is not None else []),
    ]
