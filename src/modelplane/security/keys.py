"""API keys: ``mpk_<id>_<secret>``, shown once when created and stored only as a SHA-256 of the
secret (32 random bytes: a fast hash is enough, there is nothing to guess), looked up by id and
compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "mpk"
_SHAPE = re.compile(rf"{PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})")


@dataclass(frozen=True)
class IssuedKey:
    id: str
    secret_hash: str
    token: str  # the whole key, for its owner only


def issue() -> IssuedKey:
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return IssuedKey(key_id, digest(secret), f"{PREFIX}_{key_id}_{secret}")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    found = _SHAPE.fullmatch(token)
    return (found.group(1), found.group(2)) if found else None


def matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_hash)
