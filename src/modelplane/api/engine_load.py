"""What a language-model replica tells the gateway of its engine: requests running and waiting,
its slots, the share of its KV cache in use, and how many prompt tokens its caches can keep.

The runtime sends it as the ``X-Modelplane-Engine-Load`` header of every chat and completion
answer (a busy replica thus reports on every request it answers, at no extra round trip) and at
``GET /engine/load`` (where the gateway asks replicas it has not heard from lately). The value is
a structured-field dictionary (RFC 8941), e.g.::

    X-Modelplane-Engine-Load: running=2, waiting=0, slots=4, kv=0.412, capacity=6144, cpt=3.9

``cpt`` is the characters per prompt token the replica has lately seen, so a gateway that counts
prompts in characters can tell how many of them the caches hold.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER = "x-modelplane-engine-load"
LOAD_PATH = "/engine/load"
_FIELDS = ("running", "waiting", "slots", "kv", "capacity", "cpt")


@dataclass(frozen=True, slots=True)
class EngineLoad:
    running: int  # requests holding a slot
    waiting: int  # requests in the waiting list
    slots: int  # requests the engine runs at once
    kv_usage: float  # share of the KV cache the running requests hold, 0 to 1
    capacity: int  # prompt tokens the engine's caches keep for reuse (slots and saved states)
    chars_per_token: float  # of the prompts it read lately

    def encode(self) -> str:
        return (
            f"running={self.running}, waiting={self.waiting}, slots={self.slots}, "
            f"kv={self.kv_usage:.3f}, capacity={self.capacity}, cpt={self.chars_per_token:.2f}"
        )


def decode(value: str) -> EngineLoad:
    """The load in a header's ``value``; ValueError naming what is wrong when it is not one."""
    found: dict[str, str] = {}
    for item in value.split(","):
        key, sep, number = item.strip().partition("=")
        if not sep:
            raise ValueError(f"engine load item {item.strip()!r} is not key=value")
        found[key] = number
    missing = [name for name in _FIELDS if name not in found]
    if missing:
        raise ValueError(f"engine load {value!r} lacks {', '.join(missing)}")
    load = EngineLoad(
        running=int(found["running"]),
        waiting=int(found["waiting"]),
        slots=int(found["slots"]),
        kv_usage=float(found["kv"]),
        capacity=int(found["capacity"]),
        chars_per_token=float(found["cpt"]),
    )
    if min(load.running, load.waiting, load.capacity) < 0 or load.slots < 1:
        raise ValueError(f"engine load {value!r} has a negative count or no slot")
    if not (0.0 <= load.kv_usage <= 1.0 and load.chars_per_token > 0):
        raise ValueError(f"engine load {value!r}: kv must be 0 to 1 and cpt above 0")
    return load
