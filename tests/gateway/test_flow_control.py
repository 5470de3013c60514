"""The waiting around the waiting room, in one event loop: who is let through when a slot frees,
and how a waiter shed, held too long or left by its client is refused and counted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from starlette.types import Message

from modelplane.api.priority import Priority
from modelplane.errors import ClientGoneError, EngineBusyError
from modelplane.gateway.flow_control import FlowControl, FlowOptions
from modelplane.telemetry.gateway_metrics import GatewayMetrics

KEY = "default/chat"


def flow(max_waiting: int = 4, max_wait: float = 30.0) -> FlowControl:
    return FlowControl(FlowOptions(max_waiting, max_wait), GatewayMetrics(), lambda key: False)


def shed_count(control: FlowControl, reason: str) -> float:
    labels = {"model": KEY, "reason": reason, "priority": "batch"}
    name = "modelplane_gateway_flow_shed_requests_total"
    return control.metrics.registry.get_sample_value(name, labels) or 0.0


async def until(check: Callable[[], object], what: str) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {what}")


def test_a_freed_slot_lets_the_interactive_request_through_before_earlier_batch_ones() -> None:
    async def run() -> list[str]:
        control, order = flow(), list[str]()

        async def wait(name: str, tenant: str, priority: Priority) -> None:
            await control.hold(KEY, tenant, priority, None)
            order.append(name)

        tasks = [asyncio.create_task(wait("batch", "b", Priority.BATCH))]
        await until(lambda: control.waiting(KEY) == 1, "one waiting")
        tasks.append(asyncio.create_task(wait("interactive", "a", Priority.INTERACTIVE)))
        await until(lambda: control.waiting(KEY) == 2, "two waiting")
        control.freed(KEY)
        await until(lambda: order, "one let through")
        assert control.waiting(KEY) == 1
        control.freed(KEY)
        await asyncio.gather(*tasks)
        assert control.waiting(KEY) == 0
        assert KEY not in control.rooms  # an empty room is not kept
        return order

    assert asyncio.run(run()) == ["interactive", "batch"]


def test_a_queued_batch_request_is_shed_for_an_interactive_one() -> None:
    async def run() -> None:
        control = flow(max_waiting=1)
        batch = asyncio.create_task(control.hold(KEY, "b", Priority.BATCH, None))
        await until(lambda: control.waiting(KEY) == 1, "the batch one waiting")
        interactive = asyncio.create_task(control.hold(KEY, "a", Priority.INTERACTIVE, None))
        with pytest.raises(EngineBusyError, match="higher priority"):
            await batch
        assert shed_count(control, "priority") == 1
        with pytest.raises(EngineBusyError, match="is full"):  # only its betters wait
            await control.hold(KEY, "c", Priority.BATCH, None)
        assert shed_count(control, "full") == 1
        control.release(KEY, 1)
        await interactive

    asyncio.run(run())


def test_a_request_held_past_the_bound_or_left_by_its_client_is_taken_out() -> None:
    async def run() -> None:
        control = flow(max_wait=0.2)
        with pytest.raises(EngineBusyError, match=r"stayed saturated .* 0.2s"):
            await control.hold(KEY, "b", Priority.BATCH, None)
        assert shed_count(control, "timeout") == 1

        control, left = flow(), asyncio.Event()

        async def receive() -> Message:
            await left.wait()
            return {"type": "http.disconnect"}

        held = asyncio.create_task(control.hold(KEY, "b", Priority.BATCH, receive))
        await until(lambda: control.waiting(KEY) == 1, "it waiting")
        left.set()
        with pytest.raises(ClientGoneError):
            await held
        assert control.waiting(KEY) == 0
        assert shed_count(control, "disconnected") == 1

    asyncio.run(run())
