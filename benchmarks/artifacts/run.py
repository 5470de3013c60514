"""Figures of model delivery from S3: a directory fetched by modelplane and by boto3's transfer
manager (and a killed fetch resumed), a large ONNX model's time to Ready from ``file://`` and
from ``s3://`` uncached and cached, and eight replicas started at once from one artifact.

    python -m benchmarks.artifacts.run [--only fetch ready replicas] [--size-mib 1024]

The store is Versity S3 Gateway on loopback (built once by ``scripts/s3-testenv``), read as an
account that may only list and read; everything is written under ``.bench/`` and removed after.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.artifacts.s3server import S3Server, versitygw_binary

from benchmarks.artifacts import fetching, ready, replicas
from benchmarks.artifacts.bench import Bench
from benchmarks.artifacts.data import Layout

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / ".bench"
FIGURES: dict[str, Callable[[Bench], dict[str, Any]]] = {
    "fetch": fetching.figure,
    "ready": ready.figure,
    "replicas": replicas.figure,
}


def table(found: dict[str, dict[str, Any]]) -> str:
    """The figures as one table: what was measured, modelplane, the peer, the ratio."""
    rows = [("figure", "modelplane", "peer", "ratio")]
    if "fetch" in found:
        f = found["fetch"]
        size = f"{f['bytes'] / 2**20:.0f} MiB, {f['files']} files"
        rows.append(
            (
                f"fetch {size}: s",
                str(f["modelplane_median_s"]),
                f"{f['boto3_median_s']} (boto3)",
                str(f["modelplane_over_boto3_time"]),
            )
        )
        rows.append(("fetch: MB/s", str(f["modelplane_MBps"]), str(f["boto3_MBps"]), ""))
        resume = f["resume"]
        rows.append(
            (
                f"resume after kill ({resume['kept_at_kill_mib']} MiB kept): s",
                str(resume["resumed_s"]),
                "",
                "",
            )
        )
    if "ready" in found:
        r = found["ready"]
        rows.append(
            (
                "ready s3 cached: s",
                str(r["s3_cached_median_s"]),
                f"{r['file_median_s']} (file://)",
                str(r["s3_cached_over_file"]),
            )
        )
        rows.append(
            (
                "ready s3 uncached: s",
                str(r["s3_uncached_median_s"]),
                f"{r['file_median_s']} (file://)",
                str(r["s3_uncached_over_file"]),
            )
        )
    if "replicas" in found:
        p = found["replicas"]
        rows.append(
            (
                f"{p['replicas']} replicas: bytes from the store",
                str(p["store_sent_bytes"]),
                f"{p['artifact_bytes']} (artifact)",
                str(p["store_sent_over_artifact"]),
            )
        )
        rows.append((f"{p['replicas']} replicas: apply to all Ready, s",
                     str(p["apply_to_all_ready_s"]), "", ""))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def measure(args: argparse.Namespace, work: Path) -> dict[str, dict[str, Any]]:
    (work / "s3").mkdir()
    server = S3Server(versitygw_binary(), work / "s3")
    # The read-only account, for modelplane and boto3 alike, from the environment as a replica
    # would have it; every source names its endpoint.
    keys = server.reader.env(server.endpoint)
    os.environ.update({k: v for k, v in keys.items() if k != "AWS_ENDPOINT_URL"})
    layout = Layout(args.size_mib, args.large_files, args.small_files, args.small_kib)
    bench = Bench(server, work, layout, args.size_mib, args.replica_mib, args.repeats)
    found: dict[str, dict[str, Any]] = {}
    try:
        for name in args.only:
            print(f"== {name}", flush=True)
            found[name] = FIGURES[name](bench)
            print(json.dumps(found[name], indent=1), flush=True)
    finally:
        server.stop()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(FIGURES), default=list(FIGURES))
    parser.add_argument("--size-mib", type=int, default=1024,
                        help="the fetched directory, and the served model")  # fmt: skip
    parser.add_argument("--large-files", type=int, default=3)
    parser.add_argument("--small-files", type=int, default=400)
    parser.add_argument("--small-kib", type=int, default=64)
    parser.add_argument("--replica-mib", type=int, default=128, help="the eight replicas' model")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    BENCH.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BENCH, prefix="artifacts-") as tmp:
        found = measure(args, Path(tmp))
    settings = {k: v for k, v in vars(args).items() if k != "only"}
    (BENCH / "artifacts-results.json").write_text(
        json.dumps({"settings": settings, **found}, indent=1)
    )
    print(table(found))


if __name__ == "__main__":
    main()
