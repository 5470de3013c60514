"""Operator failover on a real control plane (built by scripts/k8s-testenv): two operator
processes with ``--leader-elect``; every ``--interval`` seconds half a batch of Model specs
changes and, 3 s into the work it causes, the leader is SIGKILLed, the other half changes, and
a new contender starts in the killed one's place (as its Deployment would). Figures: each
failover (kill to the new leader holding the Lease, and to its first write), writes by any
process before it led (must be 0), duplicate children, the time to converge after the last
kill.

    python -m benchmarks.operator.failover [--models 100] [--kills 4] [--interval 20]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tests.kubernetes.controlplane import ControlPlane

from benchmarks.operator.run import BENCH, ROOT, Operator, apply, duplicates, model, wait_converged

NAMESPACE = "team-0"
POLL_SECONDS = 0.25


@dataclass
class Contender:
    operator: Operator
    led_at: float | None = None  # when first seen holding the Lease
    wrote_at: float | None = None  # when first seen with a write
    writes_before_leading: int = 0  # the most writes seen while it never yet led: must stay 0
    scrapes: list[tuple[bool, int]] = field(default_factory=list)

    def look(self) -> None:
        """One scrape: whether it leads, and its writes, from the same answer."""
        if self.operator.process.poll() is not None:
            return
        try:
            text = httpx.get(f"http://127.0.0.1:{self.operator.metrics_port}/metrics").text
        except httpx.TransportError:
            return
        leading, writes = False, 0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "modelplane_operator_leader":
                    leading = leading or sample.value == 1
                elif sample.name == "modelplane_operator_api_writes_total":
                    writes += int(sample.value)
        now = time.monotonic()
        if leading and self.led_at is None:
            self.led_at = now
        if writes and self.wrote_at is None:
            self.wrote_at = now
        if self.led_at is None:
            self.writes_before_leading = max(self.writes_before_leading, writes)


def contender(kubeconfig: Path, logs: Path, number: int) -> Contender:
    options = ("--leader-elect", "--leader-election-identity", f"operator-{number}",
               "--namespace", NAMESPACE, "--log-level", "warning")  # fmt: skip
    return Contender(Operator(kubeconfig, logs / f"operator-{number}.log", options=options))


def watch(contenders: list[Contender], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for found in contenders:
            found.look()
        time.sleep(POLL_SECONDS)


def leader(contenders: list[Contender]) -> Contender:
    live = [c for c in contenders if c.led_at is not None and c.operator.process.poll() is None]
    if len(live) != 1:
        raise RuntimeError(f"{len(live)} live leaders")
    return live[0]


def takeover(contenders: list[Contender], killed: float) -> tuple[float, float]:
    """Seconds from the kill until a contender held the Lease, and until it first wrote."""
    while time.monotonic() - killed < 120:
        for found in contenders:
            if found.led_at and found.wrote_at and found.led_at > killed:
                return found.led_at - killed, found.wrote_at - killed
        watch(contenders, POLL_SECONDS)
    raise RuntimeError("no contender took over")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--interval", type=float, default=20.0)
    args = parser.parse_args()
    testenv = subprocess.run([str(ROOT / "scripts/k8s-testenv")], capture_output=True, text=True)
    bin_dir = Path(testenv.stdout.strip().splitlines()[-1])
    with tempfile.TemporaryDirectory() as tmp, ControlPlane(bin_dir, Path(tmp) / "k8s") as plane:
        logs = Path(tmp)
        crd = subprocess.run([sys.executable, "-m", "modelplane", "crd"], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
        plane.kubectl("apply", "--server-side", "-f", "-", input=crd, check=True)
        apply(plane, [
            *({"apiVersion": "v1", "kind": "Node", "metadata": {
                "name": f"kwok-{i}", "annotations": {"kwok.x-k8s.io/node": "fake"}}}
              for i in range(2)),
            *({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
              for name in (NAMESPACE, "modelplane-system")),
        ])  # fmt: skip
        contenders = [contender(plane.kubeconfig, logs, 0)]
        watch(contenders, 3)
        contenders.append(contender(plane.kubeconfig, logs, 1))
        names = [f"m{i}" for i in range(args.models)]
        apply(plane, [model(name, NAMESPACE) for name in names])
        expected = {f"{NAMESPACE}/{name}": f"{name}-r1" for name in names}
        wait_converged(plane, expected, 600)

        changed = names[: max(1, args.models // 10)]
        failovers: list[dict[str, Any]] = []
        for kill in range(args.kills):
            batch = 8 if kill % 2 == 0 else 32
            for name in changed:
                expected[f"{NAMESPACE}/{name}"] = f"{name}-r{kill + 2}"
            apply(plane, [model(name, NAMESPACE, batch=batch) for name in changed[::2]])
            watch(contenders, 3)  # the kill lands in the middle of the work the change caused
            deposed = leader(contenders)
            deposed.operator.stop(signal.SIGKILL)
            killed = time.monotonic()
            # Half the batch changes while nobody leads: work the next leader must find.
            apply(plane, [model(name, NAMESPACE, batch=batch) for name in changed[1::2]])
            contenders.append(contender(plane.kubeconfig, logs, len(contenders)))
            led, wrote = takeover(contenders, killed)
            failovers.append({"to_lease_s": round(led, 1), "to_first_write_s": round(wrote, 1)})
            print(json.dumps(failovers[-1]), flush=True)
            watch(contenders, max(0.0, args.interval - (time.monotonic() - killed) - 3))
        converge = wait_converged(plane, expected, 600)
        lease = json.loads(plane.kubectl("get", "lease", "-n", "modelplane-system",
                                         "modelplane-operator", "-o", "json").stdout)  # fmt: skip
        results = {
            "models": args.models,
            "changed_per_kill": len(changed),
            "interval_s": args.interval,
            "failovers": failovers,
            "writes_before_leading": sum(c.writes_before_leading for c in contenders),
            "duplicates": duplicates(plane),
            "converged_s_after_last_kill": round(converge, 1),
            "lease_transitions": lease["spec"].get("leaseTransitions"),
        }
        print(json.dumps(results, indent=1), flush=True)
        for found in contenders:
            found.operator.stop()
    BENCH.mkdir(exist_ok=True)
    (BENCH / "operator-failover.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
