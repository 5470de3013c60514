"""The operator's watches across faults of its connection to the API server: watches that
expire (410 Gone) while its API server is down, and the operator alone cut off from the API
server for a minute while the rest of the control plane runs on (a relay the operator's
kubeconfig points at, ``partition.Relay``: no privileges, no packet filter needed).

The operator runs without leader election here: a leader out of touch past its renew deadline
(10 s) stops writing and exits by design, and its restart lists everything afresh, which would
hide what these tests look at (``test_leader_election`` covers the lease).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kubernetes.controlplane import ControlPlane
from tests.kubernetes.converging import apply, assert_converged, settle
from tests.kubernetes.operating import RunningOperator
from tests.kubernetes.partition import Relay

# Beyond the cluster tests' 2 minutes: settling (3 min at most), a minute's partition, recovery.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420, func_only=True)]

PARTITION_SECONDS = 60


@pytest.fixture(scope="module")
def relay(control_plane: ControlPlane) -> Iterator[Relay]:
    with Relay(("127.0.0.1", control_plane.port)) as found:
        yield found


@pytest.fixture(scope="module")
def operator(
    operator_kubeconfig: Path,
    kwok_node: str,
    relay: Relay,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningOperator]:
    """The operator, reaching the API server through the relay."""
    directory = tmp_path_factory.mktemp("watch-faults")
    kubeconfig = relay.kubeconfig(operator_kubeconfig, directory / "kubeconfig")
    running = RunningOperator(kubeconfig, directory / "op.log")
    yield running
    running.stop()


def test_watches_expired_during_an_outage_are_listed_again(
    control_plane: ControlPlane, operator: RunningOperator
) -> None:
    """A watch resumes from the last resourceVersion it saw; if etcd has compacted that
    version away meanwhile, the API server answers 410 Gone and only a fresh list can say
    what changed. To bring that on for certain, the operator's API server goes down while a
    second API server on the same etcd takes a change (a new revision) and etcd is compacted
    past everything the operator saw: when the first API server comes back, its watch cache
    starts after the compaction, every watch the operator resumes is Gone (shown by resuming
    one from the Model's last version), and the change reaches the operator only by a list."""
    settle(control_plane, "expired")
    seen = control_plane.get_json("mdl", "expired")["metadata"]["resourceVersion"]
    other = control_plane.second_apiserver()
    with control_plane.down("kube-apiserver"):
        apply(control_plane, "expired", 2, "--server", other)
        control_plane.compact()
    path = "/apis/modelplane.io/v1alpha1/namespaces/default/models"
    resumed = control_plane.kubectl(
        "get", "--raw", f"{path}?watch=1&resourceVersion={seen}&timeoutSeconds=2",
        "--request-timeout=10s",
    )  # fmt: skip
    assert '"code":410' in resumed.stdout, resumed.stdout + resumed.stderr
    assert_converged(control_plane, "expired", "expired-r2", time.monotonic())


@pytest.mark.timeout(240, func_only=True)
def test_the_operator_partitioned_from_the_api_server_for_a_minute(
    control_plane: ControlPlane, operator: RunningOperator, relay: Relay
) -> None:
    """The operator alone is cut off (its connections to the API server reset, as a firewall
    rejecting them would) while a change is made; the rest of the control plane runs on."""
    settle(control_plane, "partitioned")
    relay.cut()
    try:
        apply(control_plane, "partitioned", 2)
        time.sleep(PARTITION_SECONDS)
    finally:
        relay.heal()
    assert_converged(control_plane, "partitioned", "partitioned-r2", time.monotonic())
