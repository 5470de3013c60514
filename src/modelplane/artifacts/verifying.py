"""The one check that stands between fetched bytes and a served model: the pinned digest."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from modelplane.errors import DigestMismatchError


def check_digest(uri: str, pinned: str, actual: str, directory: bool) -> None:
    if actual == pinned:
        return
    what = "manifest digest" if directory else "sha256"
    raise DigestMismatchError(
        f"artifact {shown(uri)} has {what} {actual}, but the spec pins {pinned}; refusing to "
        f"serve it (update source.sha256 if the new artifact is intended)"
    )


def shown(uri: str) -> str:
    """``uri`` as messages and the cache may show it: without a user, password or query (a
    presigned URL carries its signature there)."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host if parts.netloc else "", parts.path, "", ""))
