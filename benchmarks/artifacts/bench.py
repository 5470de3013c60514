"""What every model-delivery figure works with: the S3 store on loopback, a work directory, the
sizes asked for, and how to wait for a thing without spinning."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.artifacts.s3server import S3Server

from benchmarks.artifacts.data import Layout

POLL = 0.02  # seconds between two looks at something awaited


@dataclass(frozen=True)
class Bench:
    server: S3Server
    work: Path
    layout: Layout  # the fetched directory
    model_mib: int  # the model started by `modelplane serve`
    replica_mib: int  # the model eight replicas start from
    repeats: int


def wait_for(check: Callable[[], bool], timeout: float, what: str, poll: float = POLL) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(poll)


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)
