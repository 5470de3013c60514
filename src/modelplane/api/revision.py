"""Revision identity: which spec changes produce a new immutable revision.

A revision is what a replica serves. Its digest covers every field that changes the served
behaviour (source, format, task, protocols, resources, batching, runtime options, generation
limits, engine, telemetry: replicas start with it); scaling and
rollout edits keep the digest, so they never restart a replica or start a rollout. LoRA adapters
(``spec.adapters`` and ``runtime.maxLoadedAdapters``) are told to running replicas instead, so
they keep it too.
"""

from __future__ import annotations

import hashlib
import json

from modelplane.api.model import ModelSpec

SERVING_FIELDS = ("source", "format", "task", "protocols", "resources", "batching", "runtime")
LATER_SERVING_FIELDS = ("generation", "engine", "telemetry")
LATER_SOURCE_FIELDS = ("endpoint", "credentials")


def revision_digest(spec: ModelSpec) -> str:
    """Hex sha256 of the serving fields; defaults are filled, so spelling them out is a no-op."""
    served = spec.model_dump(mode="json", by_alias=True, include=set(SERVING_FIELDS))
    served["runtime"].pop("maxLoadedAdapters", None)  # told to replicas as they run
    # Fields added after revisions existed count only when set, so an upgrade renames nothing.
    for name in LATER_SERVING_FIELDS:
        given = getattr(spec, name).model_dump(mode="json", by_alias=True, exclude_defaults=True)
        if given:
            served[name] = given
    for name in LATER_SOURCE_FIELDS:
        if served["source"].get(name) is None:
            served["source"].pop(name, None)
    canonical = json.dumps(served, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def revision_name(model_name: str, number: int) -> str:
    """Revisions are numbered per model: ``iris-r1``, ``iris-r2`` ..."""
    return f"{model_name}-r{number}"
