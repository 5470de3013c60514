"""Figures of the Kubernetes operator on a real control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok for the kubelets, built by scripts/k8s-testenv):

- scale: 1,000 Models across 20 namespaces reconciled to Ready with kwok pods Running: time to
  converge, the operator's CPU and memory, its writes per Model; then its writes while converged;
- crashes: the operator SIGKILLed every 30 s (and restarted at once, as its Deployment would)
  while Models change, are deleted and created: time to converge after the last kill, duplicate
  children, writes once converged.

    python -m benchmarks.operator.run [--models 1000] [--namespaces 20]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.kubernetes.controlplane import ControlPlane
from tests.kubernetes.operating import RunningOperator

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / ".bench"


def model(name: str, namespace: str, batch: int = 32) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": {"uri": "https://models.example.com/iris.onnx"},
            "format": "onnx",
            "task": "classification",
            "resources": {"cpu": "100m", "memory": "128Mi"},
            "batching": {"maxBatchSize": batch},
            "rollout": {"strategy": "Immediate"},
        },
    }


class Operator(RunningOperator):
    """The operator as the tests run it, plus what it costs."""

    def usage(self) -> dict[str, float]:
        """CPU seconds used and memory (MiB, now and at peak) of the operator process."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        status = dict(
            line.split(":", 1)
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        )
        return {
            "cpu_s": (int(stat[11]) + int(stat[12])) / ticks,
            "rss_mib": int(status["VmRSS"].split()[0]) / 1024,
            "peak_rss_mib": int(status["VmHWM"].split()[0]) / 1024,
        }


def kubectl_json(plane: ControlPlane, *args: str) -> Any:
    return json.loads(plane.kubectl(*args, "-o", "json", check=True, timeout=120).stdout)


def apply(plane: ControlPlane, objects: list[dict[str, Any]]) -> None:
    document = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    plane.kubectl("apply", "--server-side", "-f", "-", input=document, check=True, timeout=300)


def converged(plane: ControlPlane, expected: dict[str, str]) -> bool:
    """Every expected Model (namespace/name -> stable revision) Ready on that revision, with
    exactly that revision's Deployment, and no Deployment of any other Model."""
    models = kubectl_json(plane, "get", "mdl", "-A")["items"]
    seen = {}
    for found in models:
        key = f"{found['metadata']['namespace']}/{found['metadata']['name']}"
        status = found.get("status") or {}
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
        )
        current = status.get("observedGeneration") == found["metadata"]["generation"]
        seen[key] = status.get("stableRevision") if ready and current else None
    if seen != expected:
        return False
    deployments = {
        f"{d['metadata']['namespace']}/{d['metadata']['name']}"
        for d in kubectl_json(
            plane, "get", "deploy", "-A", "-l", "app.kubernetes.io/managed-by=modelplane"
        )["items"]
    }
    wanted = {f"{key.split('/')[0]}/{revision}" for key, revision in expected.items()}
    return deployments == wanted


def wait_converged(plane: ControlPlane, expected: dict[str, str], timeout: float) -> float:
    started = time.monotonic()
    while not converged(plane, expected):
        if time.monotonic() - started > timeout:
            raise RuntimeError("did not converge")
        time.sleep(2)
    return time.monotonic() - started


def duplicates(plane: ControlPlane) -> dict[str, int]:
    """Children that should be one but are more: a revision repeating its predecessor's
    spec, and Deployments, Services, PDBs per revision (names make those unique by
    construction; counted anyway)."""
    revisions = kubectl_json(
        plane, "get", "controllerrevision", "-A", "-l", "app.kubernetes.io/managed-by=modelplane"
    )["items"]
    by_model: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for r in revisions:
        meta = r["metadata"]
        by_model.setdefault((meta["namespace"], meta["labels"]["modelplane.io/model"]), []).append(
            (r["revision"], r["data"]["digest"])
        )
    # A spec changed back is a new revision by design; the same spec twice in a row is not.
    repeats = 0
    for found in by_model.values():
        found.sort()
        repeats += sum(a[1] == b[1] for a, b in itertools.pairwise(found))
    result = {"revisions_repeating_the_previous": repeats}
    for kind in ("deploy", "svc", "pdb"):
        items = kubectl_json(
            plane, "get", kind, "-A", "-l", "app.kubernetes.io/managed-by=modelplane"
        )["items"]
        owners = Counter(
            (i["metadata"]["namespace"], i["metadata"]["labels"]["modelplane.io/revision"])
            for i in items
        )
        result[kind] = sum(n - 1 for n in owners.values() if n > 1)
    return result


def quiet_writes(operator: Operator, seconds: float) -> int:
    before = operator.writes_by_kind() or Counter()
    time.sleep(seconds)
    after = operator.writes_by_kind() or Counter()
    return sum((after - before).values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=20)
    args = parser.parse_args()
    bin_dir = Path(
        subprocess.run(
            [str(ROOT / "scripts/k8s-testenv")], capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    results: dict[str, Any] = {"models": args.models, "namespaces": args.namespaces}
    with tempfile.TemporaryDirectory() as tmp, ControlPlane(bin_dir, Path(tmp) / "k8s") as plane:
        crd = subprocess.run(
            [sys.executable, "-m", "modelplane", "crd"], capture_output=True, text=True, check=True
        ).stdout
        plane.kubectl("apply", "--server-side", "-f", "-", input=crd, check=True)
        apply(plane, [
            {"apiVersion": "v1", "kind": "Node", "metadata": {
                "name": f"kwok-{i}", "annotations": {"kwok.x-k8s.io/node": "fake"}}}
            for i in range(4)
        ] + [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"team-{n}"}}
            for n in range(args.namespaces)
        ])  # fmt: skip
        time.sleep(5)
        operator = Operator(
            plane.kubeconfig, Path(tmp) / "operator.log", options=("--log-level", "warning")
        )
        per_namespace = args.models // args.namespaces
        expected = {
            f"team-{n}/m{i}": f"m{i}-r1"
            for n in range(args.namespaces)
            for i in range(per_namespace)
        }

        # -- scale ----------------------------------------------------------------------------
        started = time.monotonic()
        written: list[float] = []  # when the operator had written every Model's Deployment

        def watch_writes() -> None:
            while not written and time.monotonic() - started < 1800:
                found = operator.writes_by_kind() or Counter()
                if found["apply Deployment"] >= len(expected):
                    written.append(time.monotonic() - started)
                time.sleep(0.5)

        sampler = threading.Thread(target=watch_writes, daemon=True)
        sampler.start()
        for n in range(args.namespaces):
            apply(plane, [model(f"m{i}", f"team-{n}") for i in range(per_namespace)])
        applied = time.monotonic() - started
        converge = wait_converged(plane, expected, 1800) + applied
        sampler.join()
        usage = operator.usage()
        writes = operator.writes_by_kind() or Counter()
        pods = kubectl_json(plane, "get", "pods", "-A", "--field-selector=status.phase=Running")
        results["scale"] = {
            "apply_s": round(applied, 1),
            "operator_wrote_all_deployments_s": round(written[0], 1) if written else None,
            "converged_s": round(converge, 1),
            "running_pods": len(pods["items"]),
            "operator": usage,
            "writes": dict(writes),
            "writes_per_model": round(sum(writes.values()) / len(expected), 2),
            "writes_in_30s_converged": quiet_writes(operator, 30),
            "cpu_s_in_30s_converged": round(operator.usage()["cpu_s"] - usage["cpu_s"], 2),
        }
        print(json.dumps(results["scale"], indent=1), flush=True)

        # -- crashes ----------------------------------------------------------------------------
        keys = sorted(expected)
        tenth, twentieth = len(keys) // 10, len(keys) // 20
        changed = keys[:tenth]
        last_namespace = keys[-1].split("/")[0] + "/"
        deleted = [k for k in keys if k.startswith(last_namespace)][:twentieth]
        changes = [
            (f"change {tenth} specs", lambda: apply(plane, [
                model(k.split("/")[1], k.split("/")[0], batch=8) for k in changed])),
            (f"delete {twentieth}", lambda: plane.kubectl(
                "delete", "mdl", "-n", deleted[0].split("/")[0],
                *[k.split("/")[1] for k in deleted], "--wait=false", check=True)),
            (f"create {twentieth}", lambda: apply(plane, [
                model(f"new{i}", "team-1") for i in range(twentieth)])),
            (f"change {tenth} specs back", lambda: apply(plane, [
                model(k.split("/")[1], k.split("/")[0], batch=32) for k in changed])),
        ]  # fmt: skip
        for key in changed:
            expected[key] = expected[key].replace("-r1", "-r3")
        for key in deleted:
            del expected[key]
        expected.update({f"team-1/new{i}": f"new{i}-r1" for i in range(twentieth)})
        kills = []
        for index, (what, change) in enumerate(changes):
            if index:
                time.sleep(27)
            change()
            time.sleep(3)  # the kill lands in the middle of the work the change caused
            operator.stop(signal.SIGKILL)
            kills.append(what)
            operator.start()
        converge = wait_converged(plane, expected, 600)
        results["crashes"] = {
            "kills": len(kills),
            "changes_between_kills": kills,
            "converged_s_after_last_kill": round(converge, 1),
            "duplicates": duplicates(plane),
            "writes_in_30s_converged": quiet_writes(operator, 30),
        }
        print(json.dumps(results["crashes"], indent=1), flush=True)
        operator.stop()
    BENCH.mkdir(exist_ok=True)
    (BENCH / "operator-results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
