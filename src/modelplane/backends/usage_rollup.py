"""Usage as the platform counts it, before it is kept: per namespace, Model, revision and hour,
what its replicas held (replica-seconds, and the same weighted by what each replica requested)
and what its answers took (requests by class, prompt and completion tokens).

Pure: every time is passed in (seconds since the epoch), so a test drives it with a fake clock.
Embedded, ``local/usage.py`` feeds it from the supervisor (a replica's phase changes) and the
gateway (a request finished), takes what accrued every interval and adds it to the state
database; on a cluster, ``usage_tally.py`` keeps it in memory for the ``modelplane_usage_*``
counters that Prometheus keeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, fields

from modelplane.api.model import Resources
from modelplane.control.reconcile import Phase

HOUR = 3600
COUNTED = frozenset({Phase.STARTING, Phase.READY})  # a replica's process exists, or is starting
_CPU = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m?)$")
_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_BYTES = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}  # fmt: skip


@dataclass(frozen=True)
class Requested:
    """What one replica asks for (``spec.resources``): CPU cores, memory in GiB, accelerators."""

    cpu: float = 1.0
    memory_gib: float = 1.0
    accelerators: int = 0

    @classmethod
    def of(cls, resources: Resources) -> Requested:
        """The quantities of ``resources``, which validation has checked are quantities."""
        cpu, milli = _match(_CPU, resources.cpu).groups()
        memory, unit = _match(_MEMORY, resources.memory).groups()
        return cls(
            float(cpu) / (1000 if milli else 1),
            float(memory) * _BYTES[unit or ""] / 2**30,
            resources.accelerators,
        )


def _match(pattern: re.Pattern[str], text: str) -> re.Match[str]:
    found = pattern.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not a resource quantity")
    return found


@dataclass
class Usage:
    """What accrued to one (namespace, Model, revision) in one hour; the state database's
    ``usage`` table has a column of each name."""

    replica_seconds: float = 0.0
    cpu_core_seconds: float = 0.0
    memory_gib_seconds: float = 0.0
    accelerator_seconds: float = 0.0
    requests: int = 0  # answered by a replica of the revision, or failed there
    client_errors: int = 0  # of them, 4xx
    server_errors: int = 0  # of them, 5xx (or no answer)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def held(self, seconds: float, requested: Requested) -> None:
        """A replica that requested ``requested`` existed for ``seconds``."""
        self.replica_seconds += seconds
        self.cpu_core_seconds += seconds * requested.cpu
        self.memory_gib_seconds += seconds * requested.memory_gib
        self.accelerator_seconds += seconds * requested.accelerators

    def answered(self, status: int, prompt: int, completion: int) -> None:
        self.requests += 1
        self.client_errors += 400 <= status < 500
        self.server_errors += status >= 500
        self.prompt_tokens += prompt
        self.completion_tokens += completion

    def add(self, other: Usage) -> None:
        # Spelled out, not looped over the fields: reports add up thousands of these.
        self.replica_seconds += other.replica_seconds
        self.cpu_core_seconds += other.cpu_core_seconds
        self.memory_gib_seconds += other.memory_gib_seconds
        self.accelerator_seconds += other.accelerator_seconds
        self.requests += other.requests
        self.client_errors += other.client_errors
        self.server_errors += other.server_errors
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens


COLUMNS = tuple(f.name for f in fields(Usage))
# Where usage accrues: namespace, Model (its name), revision, and the hour (its first second).
Key = tuple[str, str, str, int]


def hour_of(moment: float) -> int:
    return int(moment // HOUR) * HOUR


def hours(start: float, end: float) -> Iterator[tuple[int, float]]:
    """The interval [start, end) cut at the hours it spans: each hour and its seconds in it."""
    while start < end:
        hour = hour_of(start)
        until = min(end, hour + HOUR)
        yield hour, until - start
        start = until


@dataclass
class _Held:
    """A replica counted since ``since``."""

    namespace: str
    model: str
    revision: str
    requested: Requested
    since: float


class Rollup:
    """Usage accrued since it was last taken. A replica is counted while ``counted`` (starting
    or ready); ``settle`` brings the replicas still counted up to a moment."""

    def __init__(self) -> None:
        self._pending: dict[Key, Usage] = {}
        self._held: dict[str, _Held] = {}  # replica id -> since when it is counted

    def replica(
        self,
        replica_id: str,
        model_key: str,
        revision: str,
        requested: Requested,
        counted: bool,
        now: float,
    ) -> None:
        """A replica's phase changed (or it went away: ``counted`` False)."""
        held = self._held.get(replica_id)
        if held is not None and not counted:
            self._hold(self._held.pop(replica_id), now)
        elif held is None and counted:
            namespace, model = model_key.split("/", 1)
            self._held[replica_id] = _Held(namespace, model, revision, requested, now)

    def answered(
        self, model_key: str, revision: str, status: int, prompt: int, completion: int, now: float
    ) -> None:
        namespace, model = model_key.split("/", 1)
        self._at((namespace, model, revision, hour_of(now))).answered(status, prompt, completion)

    def settle(self, now: float) -> None:
        for held in self._held.values():
            self._hold(held, now)

    def pending(self, now: float) -> dict[Key, Usage]:
        """What accrued up to ``now`` and is not taken yet (the rollup's own: do not change)."""
        self.settle(now)
        return self._pending

    def take(self, now: float) -> dict[Key, Usage]:
        """What accrued up to ``now``; from here the rollup starts empty."""
        taken = self.pending(now)
        self._pending = {}
        return taken

    def put_back(self, taken: dict[Key, Usage]) -> None:
        """What was taken and could not be kept: it accrues again."""
        for key, used in taken.items():
            self._at(key).add(used)

    def _hold(self, held: _Held, until: float) -> None:
        for hour, seconds in hours(held.since, until):
            self._at((held.namespace, held.model, held.revision, hour)).held(
                seconds, held.requested
            )
        held.since = max(held.since, until)

    def _at(self, key: Key) -> Usage:
        found = self._pending.get(key)
        if found is None:
            found = self._pending[key] = Usage()
        return found
