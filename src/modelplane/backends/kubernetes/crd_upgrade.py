"""Whether replacing the live Model CRD with a new one is safe for what the cluster stores.

A CRD change can break what is already there without any error at apply time: a version still
in etcd that the new CRD drops makes those objects unreadable; a field the new schema lacks is
pruned from every object on its next write; a field that becomes required, an enum that loses a
value or a bound that tightens makes existing objects fail validation when anything (the
operator's status writes included) next updates them. ``modelplane install`` refuses such a
change and says which field and why; growing the schema (new optional fields, looser bounds,
new versions) passes.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_LOWER_BOUNDS = ("minimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "maxLength", "maxItems", "maxProperties")


def unsafe_changes(live: Schema, new: Schema) -> list[str]:
    """Why applying ``new`` over ``live`` (the CRD as the API server has it) would break stored
    objects or their clients; empty when it is safe."""
    found: list[str] = []
    for field in ("group", "scope"):
        if live["spec"].get(field) != new["spec"].get(field):
            found.append(f"spec.{field} changes: a CRD's {field} cannot change in place")
    versions = {v["name"]: v for v in new["spec"]["versions"]}
    stored = (live.get("status") or {}).get("storedVersions") or []
    for name in stored:
        if name not in versions:
            found.append(
                f"version {name} is dropped but objects are stored in it "
                "(status.storedVersions): migrate them first"
            )
    for old in live["spec"]["versions"]:
        name = old["name"]
        current = versions.get(name)
        if current is None:
            if old.get("served") and name not in stored:
                found.append(f"version {name} is dropped while served: its clients would break")
            continue
        if old.get("served") and not current.get("served"):
            found.append(f"version {name} stops being served: its clients would break")
        before = (old.get("schema") or {}).get("openAPIV3Schema") or {}
        after = (current.get("schema") or {}).get("openAPIV3Schema") or {}
        found += [f"{name}: {p}" for p in _schema_changes(before, after, "")]
    return found


def _schema_changes(old: Schema, new: Schema, path: str) -> list[str]:
    where = path or "the root"
    if old.get("x-kubernetes-preserve-unknown-fields") and not new.get(
        "x-kubernetes-preserve-unknown-fields"
    ):
        return [f"{where} stops preserving unknown fields: their stored values would be pruned"]
    if old.get("type") != new.get("type"):
        return [f"{where} changes type from {old.get('type')} to {new.get('type')}"]
    found: list[str] = []
    added = sorted(set(new.get("required") or ()) - set(old.get("required") or ()))
    found += [f"{_join(path, name)} becomes required" for name in added]
    if "enum" in new and "enum" not in old:
        found.append(f"{where} gains an enum {new['enum']}: other stored values turn invalid")
    elif "enum" in new:
        lost = [v for v in old["enum"] if v not in new["enum"]]
        if lost:
            found.append(f"{where} no longer accepts {lost}")
    for bound in _LOWER_BOUNDS:
        if new.get(bound) is not None and (old.get(bound) is None or new[bound] > old[bound]):
            found.append(f"{where} raises {bound} from {old.get(bound)} to {new[bound]}")
    for bound in _UPPER_BOUNDS:
        if new.get(bound) is not None and (old.get(bound) is None or new[bound] < old[bound]):
            found.append(f"{where} lowers {bound} from {old.get(bound)} to {new[bound]}")
    if new.get("pattern") is not None and new.get("pattern") != old.get("pattern"):
        found.append(f"{where} changes pattern to {new['pattern']!r}")
    before, after = old.get("properties") or {}, new.get("properties") or {}
    for name, schema in before.items():
        if name not in after:
            if not new.get("x-kubernetes-preserve-unknown-fields"):
                found.append(f"{_join(path, name)} is removed: stored values would be pruned")
            continue
        found += _schema_changes(schema, after[name], _join(path, name))
    if "items" in old and "items" in new:
        found += _schema_changes(old["items"], new["items"], f"{path}[]")
    extra_old, extra_new = old.get("additionalProperties"), new.get("additionalProperties")
    if isinstance(extra_old, dict) and isinstance(extra_new, dict):
        found += _schema_changes(extra_old, extra_new, f"{path}{{}}")
    return found


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
