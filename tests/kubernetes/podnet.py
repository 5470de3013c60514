"""Pods that really serve: a network namespace where kwok's Pod IPs are real addresses, and a
small stand-in for the kubelet that runs ``modelplane serve`` at each Running pod's IP.

kwok makes pods Running and gives them IPs, but runs nothing: a gateway that sends a request to
a pod IP reaches no one. Here the pod CIDR is local to a network namespace the test makes
(``ip netns``), routed from the host over a veth pair, and every Running pod of the namespace
under test gets a ``modelplane serve`` process, started from the pod's own container args and
environment, bound to the pod's IP in that network namespace. The pod's Ready condition stays
kwok's: set at once, before the process listens, as a kubelet whose probes lag would. A
ConfigMap volume is kept current as a kubelet keeps it: each key a file, replaced whole when the
ConfigMap changes (here within a poll, where a kubelet takes up to its sync period).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modelplane.backends.kubernetes.children import RUNTIME_PORT
from modelplane.backends.local.supervisor import die_with_parent
from tests.kubernetes.controlplane import POD_CIDR, ControlPlane
from tests.processes import modelplane

HOST_SIDE = "10.243.255.1"  # the veth pair's own /30, outside the pod and service CIDRs
POD_SIDE = "10.243.255.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass
class PodNetwork:
    """A network namespace in which every address of ``POD_CIDR`` is local."""

    name: str = field(default_factory=lambda: f"mp-pods-{os.getpid()}")

    def __post_init__(self) -> None:
        self.veth = f"mpv{os.getpid() % 100000}"
        _remove_stale()  # what killed runs left behind: their addresses and routes clash
        self.stop()
        _ip("netns", "add", self.name)
        try:
            peer = ("peer", "name", "pod0", "netns", self.name)
            _ip("link", "add", self.veth, "type", "veth", *peer)
            _ip("addr", "add", f"{HOST_SIDE}/30", "dev", self.veth)
            _ip("link", "set", self.veth, "up")
            inside = ("netns", "exec", self.name, "ip")
            _ip(*inside, "link", "set", "lo", "up")
            _ip(*inside, "addr", "add", POD_CIDR, "dev", "lo")  # the whole CIDR is local
            _ip(*inside, "addr", "add", f"{POD_SIDE}/30", "dev", "pod0")
            _ip(*inside, "link", "set", "pod0", "up")
            _ip(*inside, "route", "add", "default", "via", HOST_SIDE)
            _ip("route", "add", POD_CIDR, "via", POD_SIDE)
        except subprocess.CalledProcessError:
            self.stop()
            raise

    def command(self, args: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def stop(self) -> None:
        self.stop_named(self.name, self.veth)

    @staticmethod
    def stop_named(name: str, veth: str) -> None:
        for args in (
            ("route", "del", POD_CIDR, "via", POD_SIDE),
            ("link", "del", veth),
            ("netns", "del", name),
        ):
            subprocess.run(["ip", *args], capture_output=True, timeout=10, check=False)


def pods_serving(plane: ControlPlane, namespace: str, work_dir: Path) -> Iterator[PodRunner]:
    """A module fixture's pods of ``namespace`` (made if missing) serving at their IPs, in a
    pod network of their own; stopped, with the network, after them."""
    plane.kubectl("create", "namespace", namespace, check=False)
    network = PodNetwork()
    runner = PodRunner(plane, network, namespace, work_dir)
    yield runner
    runner.stop()
    network.stop()


@dataclass
class PodRunner:
    """Runs ``modelplane serve`` for every Running pod of ``namespace`` that has an IP."""

    plane: ControlPlane
    network: PodNetwork
    namespace: str
    work_dir: Path
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _failed: set[str] = field(default_factory=set)  # pods whose init container failed
    # Each started pod's ConfigMap volumes: the ConfigMap's name and the directory standing in.
    _config_volumes: dict[str, list[tuple[str, Path]]] = field(default_factory=dict)
    ips: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def serving(self) -> set[str]:
        """Pods whose process runs."""
        return {name for name, p in list(self._processes.items()) if p.poll() is None}

    def answered(self, pod: str) -> int:
        """Inference requests the pod's runtime answered, from its own /metrics at its IP."""
        text = httpx.get(f"http://{self.ips[pod]}:{RUNTIME_PORT}/metrics", timeout=5).text
        return sum(
            int(sample.value)
            for family in text_string_to_metric_families(text)
            if family.name == "modelplane_runtime_requests"
            for sample in family.samples
            if sample.name.endswith("_total") and sample.labels.get("outcome") == "success"
        )

    def _loop(self) -> None:
        while not self._stop.wait(0.3):
            listed = self.plane.kubectl(
                "get", "pods,configmaps", "-n", self.namespace, "-o", "json", check=False
            )
            if listed.returncode != 0:
                continue
            items = json.loads(listed.stdout)["items"]
            pods = {p["metadata"]["name"]: p for p in items if p["kind"] == "Pod"}
            maps = {c["metadata"]["name"]: c for c in items if c["kind"] == "ConfigMap"}
            self._refresh(maps)
            for name, pod in pods.items():
                ip = (pod.get("status") or {}).get("podIP")
                running = pod["status"].get("phase") == "Running"
                gone = pod["metadata"].get("deletionTimestamp")
                fresh = name not in self._processes and name not in self._failed
                if running and ip and not gone and fresh:
                    self._start(name, pod, ip, maps)
            for name in [n for n in self._processes if n not in pods]:
                self._end(name)
            for name, pod in pods.items():
                if pod["metadata"].get("deletionTimestamp") and name in self._processes:
                    self._end(name)

    def _start(
        self, name: str, pod: dict[str, Any], ip: str, maps: dict[str, dict[str, Any]]
    ) -> None:
        """The pod's init containers one after another, as a kubelet runs them, then its
        model container; the pod's cache volume is a directory of its own here."""
        volumes = self._volumes(name, pod)
        self._refresh(maps)
        with (self.work_dir / f"{name}.log").open("ab") as log:
            for init in pod["spec"].get("initContainers", []):
                done = subprocess.run(
                    modelplane(*_args(init, volumes)), env=_env(init, volumes), stdout=log,
                    stderr=subprocess.STDOUT, timeout=120, check=False,
                )  # fmt: skip
                if done.returncode != 0:
                    self._failed.add(name)  # the pod never starts; its log says why
                    return
            container = pod["spec"]["containers"][0]
            args = _args(container, volumes)
            args[args.index("--host") + 1] = ip
            self.ips[name] = ip
            self._processes[name] = subprocess.Popen(
                self.network.command(modelplane(*args)),
                env=_env(container, volumes),
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )

    def _volumes(self, name: str, pod: dict[str, Any]) -> dict[str, Path]:
        """Each volume of the pod as a directory of its own; a Secret's filled with its keys,
        one file each, as the kubelet mounts it; a ConfigMap's is filled by ``_refresh``."""
        found: dict[str, Path] = {}
        for volume in pod["spec"].get("volumes", []):
            directory = self.work_dir / name / volume["name"]
            directory.mkdir(parents=True, exist_ok=True)
            secret = volume.get("secret")
            if secret is not None:
                body = self.plane.get_json("secret", secret["secretName"], "-n", self.namespace)
                for key, value in (body.get("data") or {}).items():
                    (directory / key).write_bytes(base64.b64decode(value))
            config = volume.get("configMap")
            if config is not None:
                self._config_volumes.setdefault(name, []).append((config["name"], directory))
            found[volume["name"]] = directory
        return found

    def _refresh(self, maps: dict[str, dict[str, Any]]) -> None:
        """Every ConfigMap volume as its ConfigMap stands: a changed key's file replaced whole
        (a reader sees the old or the new, never half), a key gone removed."""
        for volumes in list(self._config_volumes.values()):
            for config, directory in volumes:
                data = (maps.get(config) or {}).get("data") or {}
                for key, value in data.items():
                    path = directory / key
                    if not path.exists() or path.read_text() != value:
                        staged = directory / f"..{key}.tmp"
                        staged.write_text(value)
                        staged.replace(path)
                for stale in {p.name for p in directory.iterdir()} - set(data):
                    if not stale.startswith(".."):
                        (directory / stale).unlink()

    def _end(self, name: str) -> None:
        self._config_volumes.pop(name, None)
        process = self._processes.pop(name)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for name in list(self._processes):
            self._end(name)


def _args(container: dict[str, Any], volumes: dict[str, Path]) -> list[str]:
    """The container's args with each path under a volume it mounts moved to the directory
    standing for that volume."""
    return [_local(arg, container, volumes) for arg in container["args"]]


def _env(container: dict[str, Any], volumes: dict[str, Path]) -> dict[str, str]:
    """The container's environment, paths under its volumes moved as ``_args`` moves them."""
    given = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return {**os.environ, **{k: _local(v, container, volumes) for k, v in given.items()}}


def _local(value: str, container: dict[str, Any], volumes: dict[str, Path]) -> str:
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts", [])}
    for mount in sorted(mounts, key=len, reverse=True):
        if value == mount or value.startswith(mount + "/"):
            return str(mounts[mount]) + value[len(mount) :]
    return value


def _remove_stale() -> None:
    """Pod networks of test runs whose process is gone."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        pid = name.removeprefix("mp-pods-")
        if name.startswith("mp-pods-") and pid.isdecimal() and not Path(f"/proc/{pid}").exists():
            PodNetwork.stop_named(name, f"mpv{int(pid) % 100000}")
