"""One replica's engine as the gateway knows it: the load it last reported (and when), and the
prompt blocks the gateway sent it lately, which its caches likely still hold.

Every :class:`~modelplane.gateway.routing.Endpoint` carries one, so it lives and dies with the
replica (a restarted replica is a new endpoint, with nothing cached). Reports arrive on answers
and from polls (``engine_polling.py``); :mod:`~modelplane.gateway.scoring` reads both. Pure: time
is passed in.

The blocks are an estimate, not a mirror: the gateway does not see the engine evict. It keeps
the blocks least recently sent first out once over what the replica says its caches hold
(``capacity`` tokens times its characters per token, in blocks), as its engine does.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from modelplane.api.engine_load import EngineLoad

BLOCK_CHARS = 256  # of a prompt, per block (about 64 tokens): caches are reused in whole blocks
MAX_BLOCKS = 1 << 16  # per replica, whatever it reports: the index's memory stays bounded
UNKNOWN_BLOCKS = 256  # before a replica has said what it holds


@dataclass(eq=False)
class EngineView:
    load: EngineLoad | None = None
    seen: float = -math.inf  # time.monotonic() of the last report
    held: OrderedDict[bytes, None] = field(default_factory=OrderedDict)
    ours: int = 0  # this gateway's requests at the replica when it reported

    def note(self, load: EngineLoad, now: float, outstanding: int = 0) -> None:
        """A report, made while this gateway had ``outstanding`` requests at the replica."""
        self.load, self.seen, self.ours = load, now, outstanding
        self._evict()

    def queued(self, load: EngineLoad, outstanding: int) -> int:
        """Requests at the replica now: this gateway's ``outstanding`` ones, which it counts
        exactly, and the others' (other gateways', or sent straight to it) as last reported. A
        report counts the requests that ended since as running still; this count does not."""
        others = max(0, load.running + load.waiting - self.ours)
        return outstanding + others

    def fresh(self, now: float, stale_after: float) -> EngineLoad | None:
        """The last report, unless it is older than ``stale_after`` seconds."""
        return self.load if now - self.seen <= stale_after else None

    def holding(self, blocks: Sequence[bytes]) -> int:
        """How many of the prompt's first blocks the replica likely holds."""
        count = 0
        for block in blocks:
            if block not in self.held:
                break
            count += 1
        return count

    def hold(self, blocks: Sequence[bytes]) -> None:
        """The prompt went to this replica: its blocks are now the most recently used."""
        held = self.held
        for block in blocks:
            held[block] = None
            held.move_to_end(block)
        self._evict()

    @property
    def capacity(self) -> int:
        """Blocks the replica's caches hold, by its report."""
        load = self.load
        if load is None:
            return UNKNOWN_BLOCKS
        return min(MAX_BLOCKS, int(load.capacity * load.chars_per_token) // BLOCK_CHARS)

    def _evict(self) -> None:
        held, capacity = self.held, self.capacity
        while len(held) > capacity:
            held.popitem(last=False)
