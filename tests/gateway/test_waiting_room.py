"""The waiting room of a saturated model, on its own: the order requests are served in
(priority, then namespaces in turn) and which is shed when it is full."""

from __future__ import annotations

from modelplane.api.priority import Priority
from modelplane.gateway.waiting_room import (
    OVER_PRIORITY,
    OVER_SHARE,
    ROOM_FULL,
    Waiter,
    WaitingRoom,
)

INTERACTIVE, BATCH = Priority.INTERACTIVE, Priority.BATCH


def waiter(namespace: str, priority: Priority = INTERACTIVE, at: float = 0.0) -> Waiter:
    return Waiter("default/chat", namespace, priority, at)


def shed_by(room: WaitingRoom, arriving: Waiter) -> tuple[Waiter, str]:
    """Who ``arriving`` in the full ``room`` sheds, and why."""
    shed = room.enter(arriving)
    assert shed is not None
    return shed.waiter, shed.reason


def served(room: WaitingRoom) -> list[str]:
    order = []
    while (next_one := room.next()) is not None:
        order.append(f"{next_one.namespace}:{next_one.priority.value}")
    return order


def test_interactive_requests_are_served_before_batch_ones_that_came_first() -> None:
    room = WaitingRoom(10)
    for made in (waiter("a", BATCH), waiter("a", BATCH), waiter("b"), waiter("a")):
        assert room.enter(made) is None
    assert served(room) == ["b:interactive", "a:interactive", "a:batch", "a:batch"]
    assert len(room) == 0


def test_namespaces_take_turns_so_a_flood_does_not_starve_another() -> None:
    room = WaitingRoom(100)
    for _ in range(6):
        room.enter(waiter("flood"))
    room.enter(waiter("quiet"))
    room.enter(waiter("quiet"))
    # The quiet namespace's two come second and fourth, not after the flood's six.
    assert served(room)[:5] == [
        "flood:interactive",
        "quiet:interactive",
        "flood:interactive",
        "quiet:interactive",
        "flood:interactive",
    ]


def test_a_full_room_sheds_the_newest_batch_request_for_an_interactive_one() -> None:
    room = WaitingRoom(3)
    first, newest = waiter("b", BATCH, 1), waiter("b", BATCH, 3)
    for made in (first, waiter("a", at=2), newest):
        room.enter(made)
    assert shed_by(room, waiter("c", at=4)) == (newest, OVER_PRIORITY)
    assert (len(room), room.count(BATCH)) == (3, 1)


def test_a_batch_arrival_is_refused_when_only_higher_priorities_wait() -> None:
    room = WaitingRoom(2)
    room.enter(waiter("a"))
    room.enter(waiter("b"))
    arriving = waiter("c", BATCH)
    assert shed_by(room, arriving) == (arriving, ROOM_FULL)
    assert (room.count(INTERACTIVE), room.count(BATCH)) == (2, 0)


def test_a_namespace_that_filled_the_room_gives_places_up_to_another() -> None:
    room = WaitingRoom(4)
    flood = [waiter("flood", at=n) for n in range(4)]
    for made in flood:
        room.enter(made)
    assert shed_by(room, waiter("other", at=5)) == (flood[-1], OVER_SHARE)
    assert shed_by(room, waiter("other", at=6)) == (flood[-2], OVER_SHARE)
    # Two each now: the fair share is reached, the next of "other" is refused.
    late = waiter("other", at=7)
    assert shed_by(room, late) == (late, ROOM_FULL)


def test_a_waiter_let_through_without_room_is_first_of_its_namespace_again() -> None:
    room = WaitingRoom(2)
    early, later = waiter("a", at=1), waiter("a", at=2)
    room.enter(early)
    room.enter(later)
    assert room.next() is early
    room.enter(waiter("b", at=3))  # the room is full again
    room.again(early)  # its place is kept, over capacity
    assert len(room) == 3
    assert room.peek() is early
    assert room.leave(later)
    assert not room.leave(later)
