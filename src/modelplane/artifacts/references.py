"""Which sources name a moving reference: a tag, an alias or a branch that may point at other
content tomorrow. A new revision records such a source resolved (a digest, a version, a
commit), so a revision serves the same bytes for as long as it lives."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from modelplane.api import Source

_OCI_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_MLFLOW_VERSION = re.compile(r"^/[^/@]+/[0-9]+$")
_HUB_COMMIT = re.compile(r"@[0-9a-f]{40}$")
# The source kinds whose references can be immutable (a digest, a commit, a version) or move.
IMMUTABLE_SCHEMES = frozenset({"oci", "hf", "models"})


def moving(uri: str) -> bool:
    """Whether ``uri`` names content by a reference that can move."""
    parts = urlsplit(uri)
    if parts.scheme == "oci":
        return not _OCI_DIGEST.search(uri)
    if parts.scheme == "models":
        return not _MLFLOW_VERSION.match(parts.path)
    if parts.scheme == "hf":
        return not _HUB_COMMIT.search(uri)
    return False  # files, URLs and objects are pinned by source.sha256


def source_is_immutable(source: Source) -> bool:
    """Whether ``source`` names content that can never change: an OCI digest, a hub commit,
    an MLflow version (files, URLs and objects can be overwritten)."""
    return urlsplit(source.uri).scheme in IMMUTABLE_SCHEMES and not moving(source.uri)
