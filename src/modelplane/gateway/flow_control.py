"""Fair flow control for the OpenAI API: requests for a saturated model wait in the gateway, in
the model's waiting room (``waiting_room.py``: priorities, namespaces in turn, fair shedding),
instead of being refused or piled onto the replicas' own waiting lists in arrival order.

Forwarding asks :meth:`FlowControl.hold` for a turn when the model is saturated (its decision,
in ``forwarding.py``) or others already wait. A turn comes when a slot frees: a request of the
model through this gateway ends (:meth:`freed`), a replica's report or poll shows room
(:meth:`release`), or, every ``RECHECK_SECONDS``, the request first in line finds that a
replica has room by its report, or has no fresh report (slots freed by other gateways'
requests, or replicas that report nothing and answer 429 when full). A request shed from the
room, held past ``max_wait``, or whose client leaves, is taken out at once and refused
(``EngineBusyError``, 429 with ``Retry-After``; ``ClientGoneError`` for a client that left).

A request that finds room never comes here: the forwarding's check is a dictionary lookup.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Receive

from modelplane.api.priority import Priority
from modelplane.errors import ClientGoneError, EngineBusyError
from modelplane.gateway import replies
from modelplane.gateway.waiting_room import OVER_PRIORITY, OVER_SHARE, Shed, Waiter, WaitingRoom
from modelplane.telemetry.gateway_metrics import GatewayMetrics

RECHECK_SECONDS = 1.0  # the first in line tries at least this often
RETRY_AFTER_SECONDS = 1.0  # told to a shed request: a saturated model frees slots often
TIMED_OUT, DISCONNECTED = "timeout", "disconnected"


@dataclass(frozen=True)
class FlowOptions:
    max_waiting: int = 256  # per model; 0 turns flow control off (a saturated model refuses)
    max_wait: float = 30.0  # seconds a request may wait in the room


class FlowControl:
    def __init__(
        self,
        options: FlowOptions,
        metrics: GatewayMetrics,
        has_room: Callable[[str], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``has_room``: whether a replica of the model may take a request now."""
        self.options, self.metrics, self.clock = options, metrics, clock
        self.has_room = has_room
        self.rooms: dict[str, WaitingRoom] = {}
        self._turns: dict[Waiter, asyncio.Future[None]] = {}
        self._passing: set[Waiter] = set()  # let through, not yet at a replica

    @property
    def enabled(self) -> bool:
        return self.options.max_waiting > 0

    def passing(self, key: str) -> int:
        """Waiters of ``key`` let through that have not reached a replica yet: the room a
        report shows is theirs already."""
        return sum(1 for waiter in self._passing if waiter.key == key)

    def waiting(self, key: str) -> int:
        """Requests waiting for the model ``key`` now."""
        room = self.rooms.get(key)
        return room.size if room is not None else 0

    async def hold(
        self,
        key: str,
        namespace: str,
        priority: Priority,
        receive: Receive | None,
        waiter: Waiter | None = None,
    ) -> Waiter:
        """Wait for the request's turn; the waiter it waited as (pass it back to wait again,
        first of its namespace, if it still finds no room). Raises when it is refused."""
        room = self.rooms.get(key)
        if room is None:
            room = self.rooms[key] = WaitingRoom(self.options.max_waiting)
        if waiter is None:
            waiter = Waiter(key, namespace, priority, self.clock())
            shed = room.enter(waiter)
            if shed is not None:
                self._shed(key, shed)
        else:
            room.again(waiter)
        turn = self._turns[waiter] = asyncio.get_running_loop().create_future()
        self._counted(key, priority)
        started = self.clock()
        try:
            await self._wait(key, room, waiter, turn, receive)
        finally:
            self._turns.pop(waiter, None)
            self._passing.discard(waiter)
            self._counted(key, priority)
            labels = self.metrics.flow_wait.labels(key, priority.value)
            labels.observe(self.clock() - started)
        return waiter

    async def _wait(
        self,
        key: str,
        room: WaitingRoom,
        waiter: Waiter,
        turn: asyncio.Future[None],
        receive: Receive | None,
    ) -> None:
        gone = asyncio.ensure_future(replies.disconnected(receive)) if receive else None
        deadline = waiter.arrived + self.options.max_wait
        try:
            while True:
                remaining = deadline - self.clock()
                if remaining <= 0 and not turn.done():
                    room.leave(waiter)
                    self._refused(key, waiter, TIMED_OUT)
                    raise EngineBusyError(self._timed_out(key), RETRY_AFTER_SECONDS)
                watched = {turn} if gone is None else {turn, gone}
                await asyncio.wait(watched, timeout=min(max(remaining, 0.0), RECHECK_SECONDS),
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                if turn.done():
                    turn.result()  # raises if it was shed
                    return
                if gone is not None and gone.done():
                    room.leave(waiter)
                    self._refused(key, waiter, DISCONNECTED)
                    raise ClientGoneError(f"the client left while waiting for {key!r}")
                if room.peek() is waiter and self.has_room(key):  # freed unseen: try
                    room.next()
                    return
        finally:
            if gone is not None:
                gone.cancel()

    def freed(self, key: str) -> None:
        """A request of ``key`` through this gateway ended: a slot is free for the next."""
        if key in self.rooms:
            self.release(key, 1)

    def release(self, key: str, count: int) -> None:
        """Let the next ``count`` waiters of ``key`` through."""
        room = self.rooms.get(key)
        while room is not None and count > 0:
            waiter = room.next()
            if waiter is None:
                break
            turn = self._turns.get(waiter)
            if turn is not None and not turn.done():
                turn.set_result(None)
                self._passing.add(waiter)
                count -= 1
        if room is not None and not room.size:
            del self.rooms[key]

    def _shed(self, key: str, shed: Shed) -> None:
        self._refused(key, shed.waiter, shed.reason)
        if shed.reason == OVER_PRIORITY:
            why = f"a request of higher priority needed its place in the waiting room of {key!r}"
        elif shed.reason == OVER_SHARE:
            why = (f"namespace {shed.waiter.namespace!r} held more than its fair share of the "
                   f"waiting room of {key!r}")  # fmt: skip
        else:
            why = (f"the waiting room of {key!r} is full ({self.options.max_waiting} requests "
                   f"of equal or higher priority wait)")  # fmt: skip
        refused = EngineBusyError(
            f"every replica of {key!r} is saturated and {why}; retry later, or add replicas",
            RETRY_AFTER_SECONDS,
        )
        turn = self._turns.get(shed.waiter)
        if turn is None:  # the arrival itself
            raise refused
        turn.set_exception(refused)

    def _timed_out(self, key: str) -> str:
        return (f"every replica of {key!r} stayed saturated while the request waited "
                f"{self.options.max_wait:g}s in the gateway's waiting room (its bound); retry "
                f"later, or add replicas")  # fmt: skip

    def _refused(self, key: str, waiter: Waiter, reason: str) -> None:
        self.metrics.flow_shed.labels(key, waiter.priority.value, reason).inc()

    def _counted(self, key: str, priority: Priority) -> None:
        room = self.rooms.get(key)
        waiting = room.count(priority) if room is not None else 0
        self.metrics.flow_waiting.labels(key, priority.value).set(waiting)
