"""Where the embedded gateway spends its time under load: `modelplane up` serving the iris model,
wrk at a given concurrency through the gateway, and py-spy sampling the `up` process meanwhile.
Prints the functions with the most samples of their own, and the modelplane functions with the
most samples under them.

    pip install py-spy        # beside the project: a profiler, no dependency of it
    python -m benchmarks.platform.profile [--concurrency 64] [--seconds 20] [--py-spy PATH]

The replica is pinned to CPU 0, the `up` process and wrk share CPU 1, as in the overhead
benchmark (`benchmarks/platform/run.py --only overhead`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks.platform.run import Up, model, replica_pids, wait, wrk

OWN_PREFIX = "modelplane/"


def sample(pid: int, seconds: int, py_spy: str, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250",
         "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def tally(collapsed: Path) -> tuple[Counter[str], Counter[str], int]:
    """Samples by leaf frame (own time), by modelplane frame anywhere in the stack, and all."""
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        frames = stack.split(";")
        total += samples
        own[_short(frames[-1])] += samples
        for frame in {_short(f) for f in frames if OWN_PREFIX in f}:
            under[frame] += samples
    return own, under, total


def _short(frame: str) -> str:
    """``function (path/to/file.py:line)`` as ``function (file.py)``."""
    name, _, where = frame.partition(" (")
    path = where.split(":")[0]
    marker = path.rfind("site-packages/")
    path = path[marker + len("site-packages/") :] if marker >= 0 else path.rsplit("/src/", 1)[-1]
    return f"{name} ({path})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--up-option", action="append", default=[])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelplane-profile-"))
    up = Up(work / "state", *args.up_option)
    try:
        up.apply(model("profiled", {"scaling": {"minReplicas": 1, "maxReplicas": 1}}))
        wait(lambda: up.ready("profiled") and len(replica_pids("profiled-r1")) == 1, 60)
        (replica,) = replica_pids("profiled-r1")
        subprocess.run(["taskset", "-a", "-p", "-c", "0", str(replica)], capture_output=True)
        subprocess.run(["taskset", "-a", "-p", "-c", "1", str(up.process.pid)], capture_output=True)
        url = f"{up.gateway}/v2/models/profiled/infer"
        collapsed = work / "gateway.txt"
        profiler = sample(up.process.pid, args.seconds - 2, args.py_spy, collapsed)
        figures = wrk(url, args.concurrency, args.seconds)
        profiler.wait(timeout=60)
    finally:
        up.stop()
    own, under, total = tally(collapsed)
    print(f"concurrency {args.concurrency}: {figures['rps']:,.0f} req/s with the profiler "
          f"attached, p50 {figures['p50_ms']} ms; {total} samples")  # fmt: skip
    print("\nown time (leaf frames)")
    for frame, count in own.most_common(args.top):
        print(f"{100 * count / total:5.1f}%  {frame}")
    print("\nmodelplane functions, time under them")
    for frame, count in under.most_common(args.top):
        print(f"{100 * count / total:5.1f}%  {frame}")
    print(f"\ncollapsed stacks: {collapsed}")


if __name__ == "__main__":
    main()
