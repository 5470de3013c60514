"""What the control-plane fault tests ask of a Model after a fault: Ready with the new revision
alone serving, its status complete and current, and exactly one of each child (no duplicate
Deployment, Service or ReplicaSet, no revision made twice)."""

from __future__ import annotations

import time
from typing import Any

from tests.kubernetes.conftest import condition
from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.kubernetes.operating import MODEL, RunningOperator

CONVERGE_SECONDS = 60  # the bound a user may expect after the control plane is back
# Ready after a fault of the API server or etcd also waits for kube-controller-manager, whose
# informers back off while they are down, to make the new ReplicaSet and pod: on a loaded
# 2-core machine that alone has taken over a minute. The control plane's recovery, not ours.
RECOVER_SECONDS = 180
# Each version asks for another CPU request: a new revision, rolled out at once.
VERSION = "  rollout: {{strategy: Immediate}}\n  resources: {{cpu: {millicpu}m}}\n"


def apply(plane: ControlPlane, name: str, version: int, *server: str) -> None:
    """Model ``name`` serving version ``version`` of its artifact (each one a new revision);
    ``server``: ``("--server", url)`` to apply through another API server."""
    document = MODEL.format(name=name, extra=VERSION.format(millicpu=millicpu(version)))
    plane.kubectl(*server, "apply", "-f", "-", input=document, check=True)


def children(plane: ControlPlane, name: str) -> dict[str, list[str]]:
    """The names of the Model's Deployments, Services, ReplicaSets and ControllerRevisions."""
    listed = plane.get_json(
        "deploy,svc,rs,controllerrevision", "-n", "default", "-l", f"modelplane.io/model={name}"
    )
    found: dict[str, list[str]] = {}
    for item in listed["items"]:
        if not item["metadata"].get("deletionTimestamp"):
            found.setdefault(item["kind"], []).append(item["metadata"]["name"])
    return {kind: sorted(names) for kind, names in found.items()}


def converged(plane: ControlPlane, name: str, revision: str) -> dict[str, Any] | None:
    """The Model, once it is Ready with ``revision`` alone serving, its status written for its
    current generation, and its children settled on that revision; None before."""
    found: dict[str, Any] = plane.get_json("mdl", "-n", "default", name)
    status = found.get("status") or {}
    serving = [r["name"] for r in status.get("revisions") or [] if r.get("traffic")]
    if (
        condition(found, "Ready") != "True"
        or status.get("observedGeneration") != found["metadata"]["generation"]
        or status.get("stableRevision") != revision
        or serving != [revision]
    ):
        return None
    settled = children(plane, name)
    if settled.get("Deployment") != [revision] or len(settled.get("ReplicaSet", [])) != 1:
        return None
    return found


def assert_converged(
    plane: ControlPlane, name: str, revision: str, since: float, bound: float = CONVERGE_SECONDS
) -> None:
    """Converged within ``bound`` of ``since``; no child and no revision made twice."""
    found = wait_until(
        lambda: converged(plane, name, revision), f"{name} converged on {revision}", bound
    )
    print(f"{name}: converged on {revision} in {time.monotonic() - since:.1f} s")
    number = int(revision.rsplit("-r", 1)[1])
    settled = children(plane, name)
    assert len(settled.pop("ReplicaSet")) == 1
    assert settled == {
        "ControllerRevision": [f"{name}-r{n}" for n in range(1, number + 1)],
        "Deployment": [revision],
        "Service": [revision],
    }
    [replica_set] = plane.get_json("rs", "-n", "default", "-l", f"modelplane.io/model={name}")[
        "items"
    ]
    assert replica_set["metadata"]["ownerReferences"][0]["name"] == revision
    status = found["status"]
    assert status["stableRevision"] == revision
    assert status["observedGeneration"] == found["metadata"]["generation"]
    revisions = {r["name"]: r for r in status["revisions"]}
    assert revisions[revision]["traffic"] == 100
    assert revisions[revision]["readyReplicas"] == revisions[revision]["replicas"] == 1
    pod = plane.get_json("deploy", "-n", "default", revision)["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["requests"]["cpu"] == f"{millicpu(number)}m"


def assert_recovered(
    plane: ControlPlane, name: str, revision: str, since: float, operator: RunningOperator
) -> None:
    """After a fault of the control plane itself: the operator's own part, the new revision's
    Deployment written, within ``CONVERGE_SECONDS``; all of :func:`assert_converged` within
    ``RECOVER_SECONDS``. A leader that could not renew its lease in time steps down and exits,
    as it must (also just after the API server is back, while it still refuses requests); its
    pod's restart policy starts it again, and so does this meanwhile."""

    def written() -> bool:
        restart_if_exited(operator)
        return revision in deployments(plane, name)

    wait_until(written, f"the operator writing {revision}'s Deployment", CONVERGE_SECONDS)
    restart_if_exited(operator)
    assert_converged(plane, name, revision, since, bound=RECOVER_SECONDS)


def restart_if_exited(operator: RunningOperator) -> None:
    if operator.process.poll() is not None:
        operator.stop()
        operator.start()


def deployments(plane: ControlPlane, name: str) -> list[str]:
    found = plane.get_json("deploy", "-n", "default", "-l", f"modelplane.io/model={name}")
    return [d["metadata"]["name"] for d in found["items"]]


def millicpu(version: int) -> int:
    return 100 * version


def start_change(plane: ControlPlane, operator: RunningOperator, name: str, version: int) -> None:
    """Apply a change that needs a new revision and return once the operator has made it: the
    rest of the pass (children, status) is still to come."""
    made = revisions_made(operator)
    apply(plane, name, version)
    wait_until(lambda: revisions_made(operator) > made, "the operator making a revision", 30)


def revisions_made(operator: RunningOperator) -> int:
    return int((operator.writes_by_kind() or {}).get("create ControllerRevision", 0))


# Before a fault: a fault before this one (an API server restart) can leave kube-controller-
# manager catching up for a minute, which is not what the next test measures.
SETTLE_SECONDS = 180


def settle(plane: ControlPlane, name: str) -> None:
    """``name`` at its first revision, converged (the setup of a test, not its measure)."""
    apply(plane, name, 1)
    revision = f"{name}-r1"
    wait_until(lambda: converged(plane, name, revision), f"{name} settled", SETTLE_SECONDS)
    assert_converged(plane, name, revision, time.monotonic())
