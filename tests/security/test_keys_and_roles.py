"""API keys and roles, without a server: what a key looks like, how it is checked, and what each
role may do where."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from modelplane.apiserver.key_store import SqliteKeyStore
from modelplane.errors import ForbiddenError, UnauthenticatedError
from modelplane.security import keys
from modelplane.security.authn import Authenticator, require
from modelplane.security.roles import ALL_NAMESPACES, Action, Principal, Role


def test_a_key_is_issued_once_and_stored_only_as_a_hash() -> None:
    issued = keys.issue()
    key_id, secret = keys.parse(issued.token) or ("", "")
    assert key_id == issued.id
    assert secret not in issued.secret_hash
    assert keys.matches(secret, issued.secret_hash)
    assert not keys.matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"), issued.secret_hash)
    assert keys.parse("mpk_short_x") is None
    assert keys.issue().token != issued.token


def test_the_authenticator_says_what_is_wrong(tmp_path: Path) -> None:
    store = SqliteKeyStore(tmp_path / "state.db")
    _, good = store.create("team-a", {"team-a": Role.DEPLOYER})
    info, gone = store.create("leaver", {"team-a": Role.DEPLOYER})
    store.revoke(info.id)
    system = secrets.token_urlsafe(32)
    auth = Authenticator(store, system_token=system)
    assert auth.principal(f"Bearer {good}").name == "team-a"
    assert auth.principal(f"bearer {system}").may(Action.ADMINISTER, "*")
    cases = {
        None: "requires a credential",
        "Basic dXNlcjpwYXNz": "must be 'Bearer <API key>'",
        "Bearer not-a-key": "not a modelplane API key",
        f"Bearer {good[:-2]}xx": "not valid",
        f"Bearer {gone}": "has been revoked",
    }
    for header, said in cases.items():
        with pytest.raises(UnauthenticatedError, match=said):
            auth.principal(header)
    assert Authenticator(None).principal(None).may(Action.ADMINISTER, "anywhere")


def test_roles_rank_and_a_star_grant_covers_every_namespace() -> None:
    team = Principal("team-a", {"team-a": Role.DEPLOYER, ALL_NAMESPACES: Role.VIEWER})
    assert team.may(Action.WRITE, "team-a")
    assert team.may(Action.READ, "team-b")
    assert not team.may(Action.WRITE, "team-b")
    assert not team.may(Action.ADMINISTER, "team-a")
    with pytest.raises(ForbiddenError, match="needs the role deployer"):
        require(team, Action.WRITE, "team-b")
    with pytest.raises(ValueError, match="roles are viewer, deployer, admin"):
        Role.named("owner")
