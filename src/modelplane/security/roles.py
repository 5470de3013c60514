"""Roles per namespace and what they allow.

``viewer``: read Models, their status, events, revisions and logs, and send inference requests.
``deployer``: also create, change and delete Models and drive their rollouts. ``admin``: also
manage what spans namespaces (git sources, API keys) where granted on ``*``. A grant on ``*``
applies to every namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from modelplane.api.priority import Priority

ALL_NAMESPACES = "*"


class Role(IntEnum):
    VIEWER = 1
    DEPLOYER = 2
    ADMIN = 3

    @classmethod
    def named(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            known = ", ".join(r.name.lower() for r in cls)
            raise ValueError(f"unknown role {name!r}; roles are {known}") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class Action(IntEnum):
    """What a request does; each needs the role of the same rank."""

    READ = Role.VIEWER  # get, list, watch, and inference
    WRITE = Role.DEPLOYER  # apply, delete, rollout commands
    ADMINISTER = Role.ADMIN  # git sources, keys


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: a key's name and its grants (namespace -> role), and the
    priority its requests wait with in a gateway (None: their namespace's)."""

    name: str
    grants: dict[str, Role] = field(default_factory=dict)
    priority: Priority | None = None

    def role_in(self, namespace: str) -> Role | None:
        here, everywhere = self.grants.get(namespace), self.grants.get(ALL_NAMESPACES)
        found = [r for r in (here, everywhere) if r is not None]
        return max(found) if found else None

    def may(self, action: Action, namespace: str) -> bool:
        role = self.role_in(namespace)
        return role is not None and role >= action


# Auth off: every request may do everything (embedded mode on loopback, for a first try).
ANYONE = Principal("anonymous", {ALL_NAMESPACES: Role.ADMIN})
