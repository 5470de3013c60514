"""The operator, with leader election as installed, when the control plane itself fails: the API
server restarted mid-reconcile, and etcd stopped under a running API server (watches that
expire and a partition: ``test_operator_watch_faults``). Each fault is undone before its test
ends, so the session's control plane is healthy again for the next one.

Every test changes a Model so that it needs a new revision, brings the fault on right after
the operator starts on that change, and then asks of the cluster what a user would: the Model
Ready with the new revision serving, its status complete and current, and exactly one of each
child (no duplicate Deployment, Service or ReplicaSet, no revision made twice).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.kubernetes.converging import assert_recovered, settle, start_change
from tests.kubernetes.operating import RunningOperator

# Beyond the cluster tests' 2 minutes: settling (3 min at most), the fault, recovery (4 min).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(540, func_only=True)]

OUTAGE_SECONDS = 5  # shorter than the operator's lease, longer than its renewal period


@pytest.fixture(scope="module")
def operator(
    operator_kubeconfig: Path, kwok_node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningOperator]:
    log = tmp_path_factory.mktemp("faults") / "op.log"
    # As installed: with leader election, so a fault must not cost the operator its lease.
    options = ("--leader-elect", "--leader-election-identity", "faults")
    running = RunningOperator(operator_kubeconfig, log, options=options)
    wait_until(running.leading, "the operator leading", 30)
    yield running
    running.stop()


def test_the_api_server_restarted_mid_reconcile(
    control_plane: ControlPlane, operator: RunningOperator
) -> None:
    settle(control_plane, "restarted")
    start_change(control_plane, operator, "restarted", 2)
    with control_plane.down("kube-apiserver", crash=True):
        time.sleep(OUTAGE_SECONDS)  # a loaded API server takes as long to start again
    assert_recovered(control_plane, "restarted", "restarted-r2", time.monotonic(), operator)
    wait_until(operator.leading, "the operator leading", 30)


def test_etcd_stopped_under_a_running_api_server(
    control_plane: ControlPlane, operator: RunningOperator
) -> None:
    settle(control_plane, "etcd-down")
    start_change(control_plane, operator, "etcd-down", 2)
    with control_plane.down("etcd"):
        # The API server answers meanwhile, but every read and write it takes to etcd fails.
        wait_until(
            lambda: (
                control_plane.kubectl("get", "--raw", "/readyz", "--request-timeout=5s").returncode
                != 0
            ),
            "the API server failing its readiness without etcd",
        )
        time.sleep(10)  # the fault lasts: the operator's retries meet it again and again
    assert_recovered(control_plane, "etcd-down", "etcd-down-r2", time.monotonic(), operator)
    wait_until(operator.leading, "the operator leading again", 30)
