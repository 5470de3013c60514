"""``modelplane node-cache``: the node cache agent a cluster runs on every node (a DaemonSet
that ``modelplane install --node-cache`` adds)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from modelplane.artifacts import Cache
from modelplane.cli.caching import (
    DEFAULT_LIMITS,
    CacheSizeOption,
    MaxBytesOption,
    MaxFilesOption,
    limits_from,
    size_option,
)
from modelplane.cli.observing import LogFormat, observed
from modelplane.nodecache.server import NodeCacheAgent


def node_cache(
    cache_dir: Annotated[
        Path, typer.Option(help="Where the node's artifacts are kept (a hostPath on a node).")
    ] = Path("/var/lib/modelplane/node-cache"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8071,
    cache_size: CacheSizeOption = None,
    max_artifact_files: MaxFilesOption = DEFAULT_LIMITS.max_files,
    max_artifact_bytes: MaxBytesOption = "1Ti",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    log_format: LogFormat = "json",
) -> None:
    """Keep the artifacts this node's pods fetched and hand them to the next pods here."""
    with observed("modelplane-node-cache", log_level, log_format):
        cache = Cache(cache_dir, size_option(cache_size, "--cache-size"))
        agent = NodeCacheAgent(cache, limits_from(max_artifact_files, max_artifact_bytes))
        config = uvicorn.Config(
            agent.app(), host=host, port=port, log_config=None, access_log=False,
            log_level=log_level,
        )  # fmt: skip
        asyncio.run(uvicorn.Server(config).serve())
