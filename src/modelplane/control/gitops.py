"""What one GitOps sync of a commit does, decided before anything is applied.

A sync reads every Model file of a source's directory at one commit and applies the commit
whole or not at all: any invalid document, or two files defining the same Model, refuses the
commit with every file, field and reason, and nothing from it is applied. Pruning deletes only
what this source created (its inventory), and only when asked; a commit with no Models at all,
where the source manages some, is refused rather than taken as "delete everything" (an emptied
directory is far more often a mistake than a wish).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modelplane.api import Model, load_models
from modelplane.errors import SpecError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class SyncPlan:
    commit: str
    apply: tuple[Model, ...]  # every Model at the commit, in file order
    prune: tuple[str, ...]  # keys to delete: in the inventory, gone from the commit
    inventory: frozenset[str]  # what the source manages once the plan is applied


@dataclass(frozen=True)
class SyncRefused:
    commit: str
    problems: tuple[str, ...]  # each names the file and, where there is one, the field

    @property
    def message(self) -> str:
        return f"commit {self.commit[:12]} not applied: " + "; ".join(self.problems)


def plan_sync(
    commit: str, files: Mapping[str, str], inventory: frozenset[str], prune: bool
) -> SyncPlan | SyncRefused:
    """``files``: path -> text of every manifest file of the source's directory at ``commit``."""
    problems: list[str] = []
    found: list[Model] = []
    origin: dict[str, str] = {}
    for path in sorted(files):
        try:
            models = load_models(files[path], path)
        except SpecError as exc:
            problems.append(str(exc))
            continue
        for model in models:
            key = model.key
            if key in origin:
                problems.append(f"{path}: Model {key} is also defined in {origin[key]}")
                continue
            origin[key] = path
            found.append(model)
    if problems:
        return SyncRefused(commit, tuple(problems))
    keys = frozenset(origin)
    if not keys and inventory:
        return SyncRefused(
            commit,
            (
                f"no Models in the directory, while this source manages {len(inventory)}: "
                "refusing to treat an emptied directory as deleting them all",
            ),
        )
    gone = sorted(inventory - keys)
    return SyncPlan(
        commit=commit,
        apply=tuple(found),
        prune=tuple(gone) if prune else (),
        inventory=keys if prune else keys | inventory,
    )
