"""Two operator processes with ``--leader-elect`` on a real control plane, each with the
operator ServiceAccount's token (so the Lease Role `modelplane install` makes is proved too):
one leads and writes, the other writes nothing until the leader is gone; a killed leader is
replaced without duplicate children, and a leader frozen past its lease never writes again."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.kubernetes.operating import RunningOperator, apply

pytestmark = pytest.mark.slow

NAMESPACE = "leader-ha"
LEASE = ("modelplane-system", "modelplane-operator")
TAKEOVER_SECONDS = 20  # lease duration 15 s, a contender looks every 2 s, and some room


class Pair:
    """Two contenders, started one after the other: ``first`` leads."""

    def __init__(self, kubeconfig: Path, logs: Path) -> None:
        self.kubeconfig, self.logs = kubeconfig, logs
        self.first = self.contender("first")
        wait_until(self.first.leading, "the first operator leads", 30)
        self.second = self.contender("second")

    def contender(self, identity: str) -> RunningOperator:
        options = ("--leader-elect", "--leader-election-identity", identity,
                   "--namespace", NAMESPACE)  # fmt: skip
        return RunningOperator(self.kubeconfig, self.logs / f"{identity}.log", options=options)


@pytest.fixture(scope="module")
def pair(
    control_plane: ControlPlane,
    operator_kubeconfig: Path,
    kwok_node: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pair]:
    control_plane.kubectl("create", "namespace", NAMESPACE, check=True)
    found = Pair(operator_kubeconfig, tmp_path_factory.mktemp("leader"))
    yield found
    for running in (found.first, found.second):
        running.stop()


def lease(plane: ControlPlane) -> dict[str, Any]:
    spec: dict[str, Any] = plane.get_json("lease", "-n", LEASE[0], LEASE[1])["spec"]
    return spec


def ready_everywhere(plane: ControlPlane, names: list[str]) -> bool:
    models = plane.get_json("mdl", "-n", NAMESPACE)["items"]
    ready = {
        m["metadata"]["name"]
        for m in models
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (m.get("status") or {}).get("conditions") or []
        )
    }
    return set(names) <= ready


def children_per_model(plane: ControlPlane) -> Counter[str]:
    """Every child in the namespace, counted by Model: four per Model when none is doubled."""
    listed = plane.get_json("deploy,svc,pdb,controllerrevision", "-n", NAMESPACE)["items"]
    return Counter(i["metadata"]["labels"]["modelplane.io/model"] for i in listed)


def test_one_leads_and_the_other_writes_nothing(control_plane: ControlPlane, pair: Pair) -> None:
    assert lease(control_plane)["holderIdentity"] == "first"
    apply(control_plane, "solo", namespace=NAMESPACE)
    wait_until(lambda: ready_everywhere(control_plane, ["solo"]), "solo Ready", 60)
    assert children_per_model(control_plane)["solo"] == 4
    assert (pair.first.writes() or 0) > 0
    assert pair.second.leading() is False
    assert pair.second.writes() == 0


@pytest.mark.timeout(180, func_only=True)
def test_a_killed_leader_is_replaced_without_duplicates(
    control_plane: ControlPlane, pair: Pair
) -> None:
    transitions = lease(control_plane).get("leaseTransitions", 0)
    burst = [f"burst-{i}" for i in range(6)]
    for name in burst[:3]:
        apply(control_plane, name, namespace=NAMESPACE)
    assert pair.second.writes() == 0
    pair.first.stop(signal.SIGKILL)
    killed = time.monotonic()
    for name in burst[3:]:  # changes while nobody leads: the next leader finds them
        apply(control_plane, name, namespace=NAMESPACE)
    wait_until(pair.second.leading, "the second operator takes over", TAKEOVER_SECONDS + 10)
    assert time.monotonic() - killed <= TAKEOVER_SECONDS
    held = lease(control_plane)
    assert held["holderIdentity"] == "second"
    assert held["leaseTransitions"] == transitions + 1
    wait_until(lambda: ready_everywhere(control_plane, ["solo", *burst]), "all Ready", 90)
    assert set(children_per_model(control_plane).values()) == {4}
    revisions = control_plane.get_json("controllerrevision", "-n", NAMESPACE)["items"]
    assert sorted(r["metadata"]["name"] for r in revisions) == sorted(
        f"{name}-r1" for name in ["solo", *burst]
    )


@pytest.mark.timeout(180, func_only=True)
def test_a_leader_frozen_past_its_lease_never_writes_again(
    control_plane: ControlPlane, pair: Pair
) -> None:
    """SIGSTOP stands for a leader cut off from the API server: when it wakes, the lease is
    someone else's; it must find that out before writing, and exit for a restart."""
    frozen, waiting = pair.second, pair.contender("first")
    pair.first = waiting
    made = frozen.writes()
    frozen.process.send_signal(signal.SIGSTOP)
    try:
        wait_until(waiting.leading, "the waiting operator takes over", TAKEOVER_SECONDS + 10)
        # Work the frozen leader's watches will bring it the moment it wakes.
        apply(control_plane, "while-frozen", namespace=NAMESPACE)
        wait_until(lambda: ready_everywhere(control_plane, ["while-frozen"]), "Ready", 60)
    finally:
        frozen.process.send_signal(signal.SIGCONT)
    try:
        code = frozen.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the deposed leader kept running:\n{frozen.log.read_text()[-3000:]}")
    assert code != 0
    said = frozen.log.read_text()
    assert f"second lost Lease {LEASE[0]}/{LEASE[1]}; writes made: {made:.0f}, none since" in said
    assert lease(control_plane)["holderIdentity"] == "first"
    assert set(children_per_model(control_plane).values()) == {4}
