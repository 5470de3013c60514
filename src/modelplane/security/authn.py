"""From a request's ``Authorization`` header to a Principal: the one check the control API and
the gateway share. With no key store (auth off), every request is ``ANYONE``."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Protocol

from modelplane.api.priority import Priority
from modelplane.errors import ForbiddenError, UnauthenticatedError
from modelplane.security import keys
from modelplane.security.roles import ALL_NAMESPACES, ANYONE, Action, Principal, Role
from modelplane.security.tokens import TokenVerifier

SCHEME = "Bearer"
SYSTEM = Principal("modelplane", {ALL_NAMESPACES: Role.ADMIN})


@dataclass(frozen=True)
class StoredKey:
    id: str
    name: str
    secret_hash: str
    grants: dict[str, Role]
    revoked: bool = False
    priority: Priority | None = None  # in a gateway's waiting room; None: the namespace's


class KeyStore(Protocol):
    def api_key(self, key_id: str) -> StoredKey | None: ...


class Authenticator:
    def __init__(
        self,
        store: KeyStore | None,
        system_token: str | None = None,
        tokens: TokenVerifier | None = None,
    ) -> None:
        """``store``: API keys; ``tokens``: OIDC/JWT bearer tokens (with neither, auth is off);
        ``system_token``: a secret of this process for its own calls to its API (the git
        sources'), valid only while it runs and never stored."""
        self.store, self.system_token, self.tokens = store, system_token, tokens

    @property
    def enabled(self) -> bool:
        return self.store is not None or self.tokens is not None

    def principal(self, authorization: str | None) -> Principal:
        """Who sent the request, or UnauthenticatedError saying what is wrong with it."""
        if not self.enabled:
            return ANYONE
        what = "API key or token" if self.tokens is not None else "API key"
        if not authorization:
            raise UnauthenticatedError(
                f"this platform requires a credential: Authorization: {SCHEME} <{what}>"
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != SCHEME.lower() or not token.strip():
            raise UnauthenticatedError(f"the Authorization header must be '{SCHEME} <{what}>'")
        token = token.strip()
        if self.system_token is not None and hmac.compare_digest(token, self.system_token):
            return SYSTEM
        if self.tokens is not None and token.count(".") == 2:
            return self.tokens.principal(token)
        parsed = keys.parse(token)
        if parsed is None or self.store is None:
            kinds = "a modelplane API key" + (" or a JWT" if self.tokens is not None else "")
            raise UnauthenticatedError(f"the credential is not {kinds}")
        key_id, secret = parsed
        stored = self.store.api_key(key_id)
        # One message for an unknown key and a wrong secret: no hint of which ids exist.
        if stored is None or not keys.matches(secret, stored.secret_hash):
            raise UnauthenticatedError("the API key is not valid")
        if stored.revoked:
            raise UnauthenticatedError(f"the API key {key_id} has been revoked")
        return Principal(stored.name, stored.grants, stored.priority)


def require(principal: Principal, action: Action, namespace: str) -> None:
    """ForbiddenError unless ``principal`` may do ``action`` in ``namespace``."""
    if not principal.may(action, namespace):
        where = "in every namespace" if namespace == "*" else f"in namespace {namespace!r}"
        need = Role(int(action)).label
        raise ForbiddenError(f"{principal.name!r} may not {action.name.lower()} {where}: "
                             f"that needs the role {need} there")  # fmt: skip
