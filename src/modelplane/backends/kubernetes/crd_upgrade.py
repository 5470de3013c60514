"""Whether replacing the live Model CRD with a new one is safe for what the cluster stores.

A CRD change can break what is already there without any error at apply time: a version still
in etcd that the new CRD drops makes those objects unreadable; a field the new schema lacks is
pruned from every object on its next write; a field that becomes required, an enum that loses a
value, a bound that tightens, a new pattern or format, a lost ``nullable`` or a stricter list
shape makes existing objects fail validation when anything (the operator's status writes
included) next updates them; a changed default changes what every object that left the field
out reads as. ``modelplane install`` refuses such a change and says which field and why;
growing the schema (new optional fields, looser bounds, new versions) passes. The tests hold
today's CRD to the same rules against a CRD an earlier release shipped, so a breaking change
fails before it ships.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_LOWER_BOUNDS = ("minimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "maxLength", "maxItems", "maxProperties")
# Flags whose loss refuses or prunes values a stored object may hold.
_KEPT_FLAGS = ("nullable", "x-kubernetes-int-or-string")
# A list's merge shape: a stricter one refuses stored lists with repeated items or keys.
_LIST_SHAPE = ("x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type")


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
    found = [f"{where} {problem}" for problem in _value_changes(old, new)]
    added = sorted(set(new.get("required") or ()) - set(old.get("required") or ()))
    found += [f"{_join(path, name)} becomes required" for name in added]
    return found + _nested_changes(old, new, path)


def _value_changes(old: Schema, new: Schema) -> list[str]:
    """What about one level's own values stops being accepted, or reads differently."""
    found = _enum_changes(old, new) + _bound_changes(old, new)
    for key in ("pattern", "format", "multipleOf"):
        if new.get(key) is not None and new.get(key) != old.get(key):
            found.append(f"changes {key} to {new[key]!r}")
    if "default" in old and old.get("default") != new.get("default"):
        # Defaults are applied whenever an object is read: stored objects change meaning.
        found.append(f"changes default from {old['default']!r} to {new.get('default')!r}")
    for key in _KEPT_FLAGS:
        if old.get(key) and not new.get(key):
            found.append(f"drops {key}: stored values it allowed turn invalid or are pruned")
    for key in _LIST_SHAPE:
        if key in old and old.get(key) != new.get(key):
            found.append(f"changes {key} from {old[key]!r} to {new.get(key)!r}")
    return found


def _enum_changes(old: Schema, new: Schema) -> list[str]:
    if "enum" in new and "enum" not in old:
        return [f"gains an enum {new['enum']}: other stored values turn invalid"]
    if "enum" in new:
        lost = [v for v in old["enum"] if v not in new["enum"]]
        if lost:
            return [f"no longer accepts {lost}"]
    return []


def _bound_changes(old: Schema, new: Schema) -> list[str]:
    found: list[str] = []
    for bound in _LOWER_BOUNDS:
        if new.get(bound) is not None and (old.get(bound) is None or new[bound] > old[bound]):
            found.append(f"raises {bound} from {old.get(bound)} to {new[bound]}")
    for bound in _UPPER_BOUNDS:
        if new.get(bound) is not None and (old.get(bound) is None or new[bound] < old[bound]):
            found.append(f"lowers {bound} from {old.get(bound)} to {new[bound]}")
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if new.get(flag) and not old.get(flag) and old.get(bound) == new.get(bound):
            found.append(f"makes {bound} {new.get(bound)} exclusive")
    return found


def _nested_changes(old: Schema, new: Schema, path: str) -> list[str]:
    found: list[str] = []
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
    elif extra_old and not extra_new:
        where = path or "the root"
        found.append(f"{where} stops accepting map entries: stored ones would be pruned")
    return found


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
