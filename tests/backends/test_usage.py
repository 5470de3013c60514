"""Usage as the embedded platform records it, with a fake clock: replica time cut at the hours
and weighted by what each replica requested, requests and tokens in the hour they finished, a
flush that adds to a real SQLite file (and keeps what it could not write), and the report's
period and trend."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelplane.api.model import Resources
from modelplane.apiserver.usage import period, usage_report
from modelplane.backends.local.supervisor import Replica
from modelplane.backends.local.usage import UsageRecorder, UsageStore
from modelplane.backends.usage_rollup import HOUR, Requested, Rollup, Usage, hour_of
from modelplane.backends.usage_tally import UsageTally

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC).timestamp()  # an hour's first second
SMALL = Requested(cpu=0.5, memory_gib=0.25, accelerators=0)
BIG = Requested(cpu=2, memory_gib=8, accelerators=1)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("cpu", "memory", "cores", "gib"),
    [("500m", "256Mi", 0.5, 0.25), ("2", "1Gi", 2.0, 1.0), ("1.5", "2G", 1.5, 2e9 / 2**30),
     ("250m", "1073741824", 0.25, 1.0)],
)  # fmt: skip
def test_what_a_replica_requests_is_read_from_its_resources(
    cpu: str, memory: str, cores: float, gib: float
) -> None:
    requested = Requested.of(Resources(cpu=cpu, memory=memory, accelerators=2))
    assert requested == Requested(cores, pytest.approx(gib), 2)  # type: ignore[arg-type]


def test_replica_time_is_cut_at_the_hours_and_weighted_by_what_it_requested() -> None:
    rollup = Rollup()
    started = T0 - 30  # 09:59:30
    rollup.replica("iris-r1-1", "team-a/iris", "iris-r1", SMALL, True, started)
    rollup.replica("iris-r1-1", "team-a/iris", "iris-r1", SMALL, True, started + 10)  # ready
    rollup.replica("iris-r1-1", "team-a/iris", "iris-r1", SMALL, False, T0 + 45)  # stopping

    taken = rollup.take(T0 + 600)

    before, after = taken[("team-a", "iris", "iris-r1", T0 - HOUR)], taken[
        ("team-a", "iris", "iris-r1", T0)]  # fmt: skip
    assert (before.replica_seconds, after.replica_seconds) == (30, 45)
    assert (after.cpu_core_seconds, after.memory_gib_seconds) == (22.5, 11.25)
    assert after.accelerator_seconds == 0
    assert rollup.take(T0 + 900) == {}  # stopped: nothing accrues after it


def test_a_replica_still_running_accrues_up_to_each_take_and_not_twice() -> None:
    rollup = Rollup()
    rollup.replica("big-r2-7", "team-b/big", "big-r2", BIG, True, T0 + 100)
    first = rollup.take(T0 + 160)[("team-b", "big", "big-r2", T0)]
    second = rollup.take(T0 + HOUR + 20)
    assert first.replica_seconds == 60
    assert second[("team-b", "big", "big-r2", T0)].replica_seconds == HOUR - 160
    assert second[("team-b", "big", "big-r2", T0 + HOUR)].accelerator_seconds == 20


def test_a_failed_replica_counts_nothing_until_it_starts_again() -> None:
    rollup = Rollup()
    rollup.replica("r-1", "default/m", "m-r1", SMALL, True, T0)
    rollup.replica("r-1", "default/m", "m-r1", SMALL, False, T0 + 5)  # exited: backing off
    rollup.replica("r-1", "default/m", "m-r1", SMALL, True, T0 + 65)  # started again
    assert rollup.take(T0 + 70)[("default", "m", "m-r1", T0)].replica_seconds == 10


def test_requests_and_tokens_land_in_the_hour_they_finished() -> None:
    rollup = Rollup()
    rollup.answered("team-a/chat", "chat-r1", 200, 12, 30, T0 - 1)
    rollup.answered("team-a/chat", "chat-r1", 200, 8, 4, T0)
    rollup.answered("team-a/chat", "chat-r1", 422, 0, 0, T0 + 1)
    rollup.answered("team-a/chat", "chat-r1", 503, 0, 0, T0 + 2)
    taken = rollup.take(T0 + 3)
    earlier, later = taken[("team-a", "chat", "chat-r1", T0 - HOUR)], taken[
        ("team-a", "chat", "chat-r1", T0)]  # fmt: skip
    assert (earlier.requests, earlier.prompt_tokens, earlier.completion_tokens) == (1, 12, 30)
    assert (later.requests, later.client_errors, later.server_errors) == (3, 1, 1)
    assert (later.prompt_tokens, later.completion_tokens) == (8, 4)


def test_a_flush_adds_to_what_is_kept_and_a_new_recorder_starts_from_it(tmp_path: Path) -> None:
    clock = Clock(T0)
    recorder = UsageRecorder(UsageStore(tmp_path / "state.db"), clock)
    replica = _replica("team-a/iris", "iris-r1", SMALL)
    recorder.replica(replica)
    clock.now += 40
    recorder.answered("team-a/iris", "iris-r1", 200, 0, 0)
    assert _figures(recorder.rows("team-a", 0)) == (40, 1)  # read before any flush
    recorder.flush()
    clock.now += 20
    recorder.flush()
    assert _figures(recorder.store.rows("team-a", 0)) == (60, 1)
    assert recorder.totals()[("team-a", "iris", "iris-r1")].replica_seconds == 60
    recorder.store.close()

    again = UsageRecorder(UsageStore(tmp_path / "state.db"), clock)  # after a restart
    assert again.totals()[("team-a", "iris", "iris-r1")].requests == 1
    assert again.rows("team-b", 0) == []
    again.store.close()


def test_a_flush_that_fails_keeps_its_batch_for_the_next(tmp_path: Path) -> None:
    clock = Clock(T0)
    recorder = UsageRecorder(UsageStore(tmp_path / "state.db"), clock)
    recorder.answered("team-a/iris", "iris-r1", 200, 3, 4)
    other = sqlite3.connect(tmp_path / "state.db")
    other.execute("ALTER TABLE usage RENAME TO usage_away")  # the next write fails
    with pytest.raises(sqlite3.OperationalError):
        recorder.flush()
    other.execute("ALTER TABLE usage_away RENAME TO usage")
    other.close()
    recorder.answered("team-a/iris", "iris-r1", 200, 1, 1)
    recorder.flush()
    (kept,) = recorder.store.rows(None, 0)
    assert (kept[1].requests, kept[1].prompt_tokens, kept[1].completion_tokens) == (2, 4, 5)
    recorder.store.close()


def test_the_report_starts_at_the_period_s_hour_and_buckets_each_team_s_trend() -> None:
    now = datetime.fromtimestamp(T0 + 2 * 86_400 + 1800, UTC)  # two and a half days on
    rows = [
        (("team-a", "iris", "iris-r1", int(T0) - HOUR), _used(3600, requests=5)),  # before
        (("team-a", "iris", "iris-r1", int(T0)), _used(1800, requests=1)),
        (("team-a", "iris", "iris-r2", int(T0) + 86_400), _used(600, requests=2)),
        (("team-b", "chat", "chat-r1", int(T0) + 2 * 86_400), _used(60, tokens=(10, 20))),
    ]
    found = usage_report(rows, now, since=timedelta(days=2, minutes=30), step=timedelta(days=1))

    assert found["since"] == datetime.fromtimestamp(T0, UTC).isoformat()
    assert found["stepSeconds"] == 86_400
    assert found["summary"]["requests"] == 3
    assert found["summary"]["replicaSeconds"] == 2460
    team_a, team_b = found["teams"]
    assert [b["requests"] for b in team_a["trend"]] == [1, 2, 0]
    assert [r["name"] for r in team_a["models"][0]["revisions"]] == ["iris-r1", "iris-r2"]
    assert team_a["models"][0]["summary"]["cpuCoreSeconds"] == 2400 * 0.5
    assert (team_b["summary"]["promptTokens"], team_b["summary"]["completionTokens"]) == (10, 20)
    # At most 400 buckets: a year by the hour is widened.
    assert usage_report(rows, now, timedelta(days=365), timedelta(hours=1))["stepSeconds"] > HOUR


def test_rows_summed_by_the_step_give_the_report_the_hours_give(tmp_path: Path) -> None:
    now = datetime.fromtimestamp(T0 + 3 * 86_400 + 600, UTC)
    hourly = {("team-a", "iris", "iris-r1", int(T0) + h * HOUR): _used(60 + h, requests=h % 4)
              for h in range(-5, 3 * 24 + 1)}  # fmt: skip
    clock = Clock(now.timestamp())
    recorder = UsageRecorder(UsageStore(tmp_path / "state.db"), clock)
    recorder.store.add(hourly)
    recorder.answered("team-a/iris", "iris-r1", 500, 0, 0)  # not flushed yet: in the last step
    hourly[("team-a", "iris", "iris-r1", hour_of(clock.now))].answered(500, 0, 0)
    since = timedelta(days=3)
    start, step = period(now, since)

    summed = recorder.rows("team-a", start, step)

    assert len(summed) == 4  # three days, and the hour now is in
    assert usage_report(summed, now, since) == usage_report(hourly.items(), now, since)
    recorder.store.close()


def _replica(model: str, revision: str, requested: Requested) -> Replica:
    return Replica(f"{revision}-1", model, revision, Path("m.yaml"), Path("r.log"),
                   requested=requested)  # fmt: skip


def _used(seconds: float, requests: int = 0, tokens: tuple[int, int] = (0, 0)) -> Usage:
    used = Usage()
    used.held(seconds, SMALL)
    for _ in range(requests):
        used.answered(200, 0, 0)
    used.prompt_tokens, used.completion_tokens = tokens
    return used


def _figures(rows: list[tuple[tuple[str, str, str, int], Usage]]) -> tuple[float, int]:
    total = Usage()
    for _, used in rows:
        total.add(used)
    return total.replica_seconds, total.requests


def test_a_tally_counts_the_replicas_it_observes_until_they_go_and_the_answers() -> None:
    """What the operator and a cluster gateway count in memory for Prometheus to keep."""
    clock = Clock(T0)
    tally = UsageTally(clock)
    tally.observe("team-a/iris", [("team-a/p1", "iris-r1", SMALL, False)])  # failed: not counted
    clock.now += 10
    tally.observe("team-a/iris", [("team-a/p1", "iris-r1", SMALL, True),
                                  ("team-a/p2", "iris-r2", BIG, True)])  # fmt: skip
    clock.now += 30
    tally.answered("team-a/iris", "iris-r2", 200, 12, 4)
    tally.answered("team-a/iris", "iris-r2", 422, 0, 0)
    tally.observe("team-a/iris", [("team-a/p2", "iris-r2", BIG, True)])  # p1 gone
    clock.now += 20
    totals = tally.totals()
    assert totals[("team-a", "iris", "iris-r1")].replica_seconds == 30
    r2 = totals[("team-a", "iris", "iris-r2")]
    assert (r2.replica_seconds, r2.cpu_core_seconds, r2.accelerator_seconds) == (50, 100, 50)
    assert (r2.requests, r2.client_errors, r2.prompt_tokens, r2.completion_tokens) == (2, 1, 12, 4)
    # Counters only grow: read again later, the held replica has gone on.
    clock.now += 10
    assert tally.totals()[("team-a", "iris", "iris-r2")].replica_seconds == 60
    tally.observe("team-a/iris", ())  # the Model deleted: its replicas count no more
    clock.now += 100
    assert tally.totals()[("team-a", "iris", "iris-r2")].replica_seconds == 60
