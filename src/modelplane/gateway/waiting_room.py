"""One model's waiting room: the requests a gateway holds while every replica of the model is
saturated, in the order they are to be served and shed. Pure: no I/O, no clock (the caller
stamps arrivals); ``flow_control.py`` does the waiting around it.

Order: a higher priority first (``interactive`` before ``batch``); within a priority, the
namespaces take turns (round robin), each namespace's requests first come, first served. So a
namespace that floods the room waits behind its own requests, never in front of another's.

Room: at most ``capacity`` requests. When it is full an arrival takes the place of the newest
request of the lowest priority waiting, if that is lower than its own; at the same priority, of
the newest request of the namespace holding the most places, if that holds more than one more
than the arrival's own namespace (a fair share: a namespace may fill an empty room but gives
places up as others arrive). Otherwise the arrival itself is refused.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from modelplane.api.priority import Priority

OVER_PRIORITY = "priority"  # shed for a request of a higher priority
OVER_SHARE = "fair_share"  # shed for a namespace holding less of the room
ROOM_FULL = "full"  # refused on arrival: the room holds only its betters and equals


@dataclass(eq=False, slots=True)
class Waiter:
    key: str  # the model's
    namespace: str
    priority: Priority
    arrived: float  # time.monotonic() when it first entered


@dataclass(frozen=True, slots=True)
class Shed:
    waiter: Waiter
    reason: str  # OVER_PRIORITY, OVER_SHARE or ROOM_FULL


class WaitingRoom:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # per priority: namespace -> its waiters in arrival order; the dict's order is the turn
        self._lanes: dict[Priority, OrderedDict[str, deque[Waiter]]] = {}
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def count(self, priority: Priority) -> int:
        lane = self._lanes.get(priority)
        return sum(len(waiters) for waiters in lane.values()) if lane else 0

    def enter(self, waiter: Waiter) -> Shed | None:
        """Queue ``waiter``; the one shed to make room (``waiter`` itself when refused)."""
        shed: Shed | None = None
        if self.size >= self.capacity:
            shed = self._victim(waiter)
            if shed.waiter is waiter:
                return shed
            self.leave(shed.waiter)
        self._add(waiter, front=False)
        return shed

    def again(self, waiter: Waiter) -> None:
        """A waiter let through that found no room after all: first of its namespace again,
        over capacity if it must (it had its place)."""
        self._add(waiter, front=True)

    def next(self) -> Waiter | None:
        """The waiter whose turn it is, taken out; None when the room is empty."""
        for priority in sorted(self._lanes, key=lambda p: p.rank, reverse=True):
            lane = self._lanes[priority]
            namespace, waiters = next(iter(lane.items()))
            chosen = waiters.popleft()
            del lane[namespace]
            if waiters:
                lane[namespace] = waiters  # to the end of the turn
            elif not lane:
                del self._lanes[priority]
            self.size -= 1
            return chosen
        return None

    def peek(self) -> Waiter | None:
        """The waiter whose turn it is, left in place."""
        for priority in sorted(self._lanes, key=lambda p: p.rank, reverse=True):
            return next(iter(self._lanes[priority].values()))[0]
        return None

    def leave(self, waiter: Waiter) -> bool:
        """Take ``waiter`` out (its client left, or it waited too long); whether it was in."""
        lane = self._lanes.get(waiter.priority)
        waiters = lane.get(waiter.namespace) if lane else None
        if lane is None or waiters is None or waiter not in waiters:
            return False
        waiters.remove(waiter)
        if not waiters:
            del lane[waiter.namespace]
            if not lane:
                del self._lanes[waiter.priority]
        self.size -= 1
        return True

    def _add(self, waiter: Waiter, front: bool) -> None:
        lane = self._lanes.setdefault(waiter.priority, OrderedDict())
        waiters = lane.get(waiter.namespace)
        if waiters is None:
            waiters = lane[waiter.namespace] = deque()
            if front:
                lane.move_to_end(waiter.namespace, last=False)
        if front:
            waiters.appendleft(waiter)
        else:
            waiters.append(waiter)
        self.size += 1

    def _victim(self, arriving: Waiter) -> Shed:
        lowest = min(self._lanes, key=lambda p: p.rank)
        lane = self._lanes[lowest]
        largest = max(lane, key=lambda ns: len(lane[ns]))
        if lowest.rank < arriving.priority.rank:
            return Shed(lane[largest][-1], OVER_PRIORITY)
        if lowest is arriving.priority:
            own = len(lane.get(arriving.namespace, ()))
            if len(lane[largest]) > own + 1:
                return Shed(lane[largest][-1], OVER_SHARE)
        return Shed(arriving, ROOM_FULL)
