"""OIDC/JWT bearer tokens: verified against the identity provider's keys (a JWKS file or URL,
see ``jwks``), issuer, audience and lifetime, with an allow-list of asymmetric algorithms; roles
come from the token's groups, mapped to namespaces by the platform's settings.

Only asymmetric algorithms may be allowed: a symmetric one (HS256) with a JWKS's public key as
its secret is the classic algorithm-confusion forgery, and ``none`` is no signature at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import jwt

from modelplane.errors import UnauthenticatedError
from modelplane.security.jwks import (
    REFRESH_SECONDS,
    TIMEOUT_SECONDS,
    FileKeys,
    RemoteKeys,
    SigningKeys,
)
from modelplane.security.roles import Principal, Role

ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
LEEWAY_SECONDS = 30  # clock skew between the identity provider and this machine


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    audience: str
    jwks: str  # a JWKS file, or an https:// URL of one
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    groups_claim: str = "groups"
    # group -> {namespace or "*": role}
    group_grants: dict[str, dict[str, Role]] = field(default_factory=dict)
    jwks_refresh: float = REFRESH_SECONDS  # seconds between fetches of a JWKS URL
    jwks_timeout: float = TIMEOUT_SECONDS  # for one fetch, and for the wait on the first

    def __post_init__(self) -> None:
        refused = sorted(set(self.algorithms) - ASYMMETRIC)
        if refused:
            raise ValueError(
                f"algorithms {', '.join(refused)} may not be allowed: only asymmetric ones "
                f"({', '.join(sorted(ASYMMETRIC))})"
            )
        if not self.algorithms:
            raise ValueError("at least one algorithm must be allowed")


def group_grants(items: Iterable[str]) -> dict[str, dict[str, Role]]:
    """``GROUP=NAMESPACE:ROLE`` items (``--oidc-group``) as ``OidcSettings.group_grants``;
    ValueError names a malformed one."""
    grants: dict[str, dict[str, Role]] = {}
    for item in items:
        group, sep, where = item.partition("=")
        namespace, colon, role = where.partition(":")
        if not (sep and colon and group and namespace):
            raise ValueError(f"group grant {item!r}: expected GROUP=NAMESPACE:ROLE")
        grants.setdefault(group, {})[namespace] = Role.named(role)
    return grants


class TokenVerifier:
    """Checks tokens with keys it holds: a JWKS URL is fetched in the background between
    ``start()`` and ``close()`` (or within ``with verifier:``), never while a token waits."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        source = settings.jwks
        if source.startswith(("https://", "http://")):
            self._keys: SigningKeys = RemoteKeys(
                source, settings.jwks_refresh, settings.jwks_timeout
            )
        else:
            self._keys = FileKeys(Path(source))

    def start(self) -> None:
        self._keys.start()

    def close(self) -> None:
        self._keys.close()

    def __enter__(self) -> TokenVerifier:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def principal(self, token: str) -> Principal:
        """The token's subject with the grants of its groups, or UnauthenticatedError saying
        what is wrong with the token."""
        settings = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise UnauthenticatedError(f"the bearer token is not a well-formed JWT: {exc}") from exc
        algorithm = header.get("alg")
        if algorithm not in settings.algorithms:
            allowed = ", ".join(settings.algorithms)
            raise UnauthenticatedError(
                f"the token's algorithm {algorithm!r} is not allowed (allowed: {allowed})"
            )
        key = self._key(header)
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=list(settings.algorithms), audience=settings.audience,
                issuer=settings.issuer, leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )  # fmt: skip
        except jwt.ExpiredSignatureError as exc:
            raise UnauthenticatedError("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise UnauthenticatedError("the token is not valid yet (nbf or iat ahead)") from exc
        except jwt.InvalidAudienceError as exc:
            raise UnauthenticatedError(
                f"the token is not for this platform (audience must be {settings.audience!r})"
            ) from exc
        except jwt.InvalidIssuerError as exc:
            raise UnauthenticatedError(f"the token was not issued by {settings.issuer!r}") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise UnauthenticatedError(f"the token lacks the {exc.claim!r} claim") from exc
        except jwt.InvalidSignatureError as exc:
            raise UnauthenticatedError("the token's signature does not verify") from exc
        except jwt.InvalidTokenError as exc:
            raise UnauthenticatedError(f"the token is not valid: {exc}") from exc
        return Principal(str(claims["sub"]), self._grants(claims))

    def _key(self, header: dict[str, Any]) -> Any:
        kid = header.get("kid")
        # Signing keys only: a JWKS may also publish encryption keys.
        keys = [k for k in self._keys.current().keys if k.public_key_use in ("sig", None)]
        found = [k for k in keys if kid is not None and k.key_id == kid]
        if not found and kid is None and len(keys) == 1:
            found = keys
        if not found:
            if isinstance(kid, str):
                self._keys.unknown(kid)
            raise UnauthenticatedError(f"no key of the identity provider has the id {kid!r}")
        return found[0].key

    def _grants(self, claims: dict[str, Any]) -> dict[str, Role]:
        groups = claims.get(self.settings.groups_claim) or []
        if isinstance(groups, str):
            groups = [groups]
        grants: dict[str, Role] = {}
        for group in groups:
            for namespace, role in self.settings.group_grants.get(str(group), {}).items():
                grants[namespace] = max(role, grants.get(namespace, role))
        return grants
