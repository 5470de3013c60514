"""Figure 1: a directory of a few large files and many small ones fetched from S3 by
modelplane's ``Fetcher`` (fresh cache each time, verified) and by boto3's transfer manager with
its defaults, all files submitted at once as ``aws s3 cp --recursive`` does; arms alternate.
Then a modelplane fetch killed at half way and resumed.

Run as a module (``python -m benchmarks.artifacts.fetching CACHE URI ENDPOINT``) it is the fetch
that gets killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from s3transfer.manager import TransferManager
from tests.artifacts.s3server import BUCKET

from benchmarks.artifacts.bench import Bench, median, wait_for
from benchmarks.artifacts.data import MiB, upload, write_directory
from modelplane.api import Source
from modelplane.artifacts import Fetcher, Limits, artifact_cache, digest_of

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "directory"
URI = f"s3://{BUCKET}/{PREFIX}/"
ARMS = ("modelplane", "boto3")


def modelplane_fetch(cache_dir: Path, endpoint: str) -> Path:
    with Fetcher(artifact_cache(cache_dir), cache_dir) as fetcher:
        return fetcher.fetch(Source(uri=URI, endpoint=endpoint))


def boto3_fetch(target: Path, endpoint: str) -> Path:
    """What ``aws s3 cp --recursive`` does: list the prefix, submit every object to one
    transfer manager (default TransferConfig: 10 requests at once, 8 MiB parts), then wait."""
    client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"})
    )
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX + "/")
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    with TransferManager(client) as manager:
        futures = []
        for key in keys:
            path = target / key[len(PREFIX) + 1 :]
            path.parent.mkdir(parents=True, exist_ok=True)
            futures.append(manager.download(BUCKET, key, str(path)))
        for future in futures:
            future.result()
    return target


def timed(arm: str, bench: Bench, digest: str | None) -> float:
    """One fetch by ``arm`` into an empty place, checked against ``digest`` when given."""
    out = bench.work / "fetched"
    os.sync()  # the previous arm's writes are not left for this one to flush
    started = time.perf_counter()
    if arm == "modelplane":
        path = modelplane_fetch(out, bench.server.endpoint)
    else:
        path = boto3_fetch(out / "boto3", bench.server.endpoint)
    seconds = time.perf_counter() - started
    if digest is not None and digest_of(path, Limits(), URI) != digest:
        raise RuntimeError(f"{arm} fetched other bytes than were uploaded")
    shutil.rmtree(out)
    return seconds


def journaled(cache_dir: Path) -> int:
    """Bytes of the parts a fetch into ``cache_dir`` recorded as finished (what a resumed fetch
    keeps)."""
    done = 0
    for journal in (cache_dir / "artifacts" / "partial").glob("*/state/*"):
        try:
            header, *starts = journal.read_text().splitlines(keepends=True)
        except (OSError, ValueError):
            continue
        size, part = (int(word) for word in header.split()[-2:])
        done += sum(min(part, size - int(s)) for s in starts if s.endswith("\n"))
    return done


def resumed(bench: Bench, size: int, digest: str) -> dict[str, Any]:
    """A fetch in a child process, killed once half the bytes are journaled; then the same
    fetch again in the same cache, timed."""
    cache = bench.work / "resume-cache"
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.artifacts.fetching", str(cache), URI,
         bench.server.endpoint],
        cwd=ROOT,
    )  # fmt: skip
    try:
        wait_for(lambda: journaled(cache) >= size // 2 or child.poll() is not None, 600, "half")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    kept = journaled(cache)
    os.sync()
    started = time.perf_counter()
    path = modelplane_fetch(cache, bench.server.endpoint)
    seconds = time.perf_counter() - started
    if digest_of(path, Limits(), URI) != digest:
        raise RuntimeError("the resumed fetch has other bytes than were uploaded")
    shutil.rmtree(cache)
    return {
        "kept_at_kill_mib": round(kept / MiB, 1),
        "finished_before_kill": child.returncode == 0,
        "resumed_s": round(seconds, 3),
    }


def figure(bench: Bench) -> dict[str, Any]:
    local = bench.work / "directory"
    size = write_directory(local, bench.layout)
    upload(bench.server.client(), BUCKET, local, PREFIX)
    started = time.perf_counter()
    digest = digest_of(local, Limits(), URI)
    hashing = time.perf_counter() - started
    runs: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for index in range(bench.repeats):
        for arm in ARMS if index % 2 == 0 else ARMS[::-1]:
            runs[arm].append(timed(arm, bench, digest if index == 0 else None))
    result: dict[str, Any] = {
        "bytes": size,
        "files": sum(1 for p in local.rglob("*") if p.is_file()),
        "runs_s": runs,
        "hash_directory_s": round(hashing, 3),  # part of modelplane's time: it verifies
    }
    for arm in ARMS:
        result[f"{arm}_median_s"] = median(runs[arm])
        result[f"{arm}_MBps"] = round(size / 1e6 / median(runs[arm]), 1)
    result["modelplane_over_boto3_time"] = round(
        result["modelplane_median_s"] / result["boto3_median_s"], 2
    )
    result["resume"] = resumed(bench, size, digest)
    shutil.rmtree(local)
    return result


if __name__ == "__main__":
    cache_dir, uri, endpoint = sys.argv[1:4]
    with Fetcher(artifact_cache(Path(cache_dir)), Path(cache_dir)) as fetcher:
        fetcher.fetch(Source(uri=uri, endpoint=endpoint))
