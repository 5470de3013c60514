"""What keeping each team's usage costs: the hook a finished request calls (on the gateway's
request path), one flush of an interval's worth, and the usage report and the ``/metrics``
scrape over a month of hourly rows, on a real SQLite file.

    python -m benchmarks.usage.run [--models 100] [--days 30]

Each Model has one revision and one replica, and answered requests every hour of the period.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from modelplane.apiserver.usage import period, usage_report
from modelplane.backends.local.usage import UsageRecorder, UsageStore
from modelplane.backends.usage_metrics import UsageCollector
from modelplane.backends.usage_rollup import HOUR, Key, Requested, Usage, hour_of

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / ".bench"


def timed(work: Callable[[], object], repeat: int) -> float:
    """The median seconds of ``work`` over ``repeat`` runs."""
    took = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        took.append(time.perf_counter() - started)
    return statistics.median(took)


def history(models: int, days: int, now: float) -> dict[Key, Usage]:
    rows = {}
    for hour in range(hour_of(now) - days * 24 * HOUR, hour_of(now), HOUR):
        for index in range(models):
            used = Usage()
            used.held(HOUR, Requested(cpu=1, memory_gib=2))
            for _ in range(3):
                used.answered(200, 120, 40)
            rows[(f"team-{index % 10}", f"model-{index}", f"model-{index}-r1", hour)] = used
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    now = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        store = UsageStore(Path(scratch) / "state.db")
        rows = history(args.models, args.days, now)
        started = time.perf_counter()
        store.add(rows)
        loaded = time.perf_counter() - started
        recorder = UsageRecorder(store)
        keys = [f"team-{i % 10}/model-{i}" for i in range(args.models)]
        calls = 200_000
        started = time.perf_counter()
        for call in range(calls):
            recorder.answered(keys[call % len(keys)], "r1", 200, 120, 40)
        hook = (time.perf_counter() - started) / calls
        interval = dict(list(rows.items())[: args.models])  # an interval: each Model
        flush = timed(lambda: store.add(interval), 20)
        since = timedelta(days=args.days)
        when = datetime.fromtimestamp(now, UTC)
        start, step = period(when, since)  # as the API asks: summed by the trend's step
        read = timed(lambda: recorder.rows(None, start, step), 5)
        found = recorder.rows(None, start, step)
        report = timed(lambda: usage_report(found, when, since), 5)
        registry = CollectorRegistry()
        registry.register(UsageCollector(recorder.totals))
        scrape = timed(lambda: generate_latest(registry), 20)
        store.close()
    results = {
        "models": args.models,
        "days": args.days,
        "rows": len(rows),
        "load_seconds": round(loaded, 3),
        "hook_microseconds_per_request": round(hook * 1e6, 3),
        "flush_milliseconds_per_interval": round(flush * 1e3, 3),
        "read_milliseconds": round(read * 1e3, 1),
        "report_milliseconds": round(report * 1e3, 1),
        "scrape_milliseconds": round(scrape * 1e3, 3),
    }
    BENCH.mkdir(exist_ok=True)
    (BENCH / "usage-results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
