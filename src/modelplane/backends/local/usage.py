"""Each team's usage, kept: the embedded platform's record of what its replicas held and its
answers took, per namespace, Model, revision and hour, in the state database's ``usage`` table.

Nothing on a request's path writes the database. The supervisor tells ``UsageRecorder`` when a
replica's phase changes and the gateway when a request finished; both only add to a ``Rollup``
in memory. Every ``FLUSH_SECONDS`` (and once more when the platform stops) what accrued is added
to the table in one transaction, so a crash loses at most one interval. The usage API
(``apiserver/usage.py``) and the ``modelplane_usage_*`` metrics read what is stored together
with what accrued since.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from modelplane.backends.local.schema import open_state, read_only
from modelplane.backends.local.supervisor import Replica
from modelplane.backends.usage_rollup import COLUMNS, COUNTED, HOUR, Key, Rollup, Usage

log = logging.getLogger(__name__)

FLUSH_SECONDS = 30.0
# Column names are this module's constants, never input.
_ADD = (
    f"INSERT INTO usage (namespace, model, revision, hour, {', '.join(COLUMNS)}) "  # noqa: S608
    f"VALUES (?, ?, ?, ?, {', '.join('?' for _ in COLUMNS)}) "
    "ON CONFLICT (namespace, model, revision, hour) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in COLUMNS)
)
_SUMS = ", ".join(f"SUM({c})" for c in COLUMNS)
Revision = tuple[str, str, str]  # namespace, Model, revision


class UsageStore:
    """The ``usage`` table: hourly rows, added to and read."""

    def __init__(self, path: Path | str) -> None:
        self._db = open_state(path)
        self._path = path

    def close(self) -> None:
        self._db.close()

    def add(self, batch: Mapping[Key, Usage]) -> None:
        """Add ``batch`` to what is kept, all of it or (failing) none."""
        rows = [(*key, *(getattr(used, c) for c in COLUMNS)) for key, used in batch.items()]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(_ADD, rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def rows(
        self, namespace: str | None, since_hour: int, step: int = HOUR
    ) -> list[tuple[Key, Usage]]:
        """The hours from ``since_hour`` on, of ``namespace`` (or every one), summed by
        ``step`` (seconds, whole hours): each row keyed by its step's first second."""
        where = "hour >= ?" + ("" if namespace is None else " AND namespace = ?")
        with read_only(self._path) as db:  # a report: callable from a thread
            found = db.execute(
                f"SELECT namespace, model, revision, ? + (hour - ?) / ? * ? AS bucket, {_SUMS} "  # noqa: S608
                f"FROM usage WHERE {where} GROUP BY namespace, model, revision, bucket",
                (since_hour, since_hour, step, step, since_hour,
                 *(() if namespace is None else (namespace,))),
            ).fetchall()  # fmt: skip
        return [((r[0], r[1], r[2], r[3]), Usage(*r[4:])) for r in found]

    def totals(self) -> dict[Revision, Usage]:
        """Everything kept, per namespace, Model and revision."""
        found = self._db.execute(
            f"SELECT namespace, model, revision, {_SUMS} FROM usage "  # noqa: S608
            "GROUP BY namespace, model, revision"
        )
        return {(r[0], r[1], r[2]): Usage(*r[3:]) for r in found.fetchall()}


class UsageRecorder:
    """Usage as it happens, in memory, flushed to a ``UsageStore`` every interval."""

    def __init__(
        self,
        store: UsageStore,
        clock: Callable[[], float] = time.time,
        interval: float = FLUSH_SECONDS,
    ) -> None:
        self.store, self.clock, self.interval = store, clock, interval
        self._rollup = Rollup()
        self._totals = store.totals()  # read once; each flush adds to it

    def replica(self, replica: Replica) -> None:
        """The supervisor's hook: ``replica``'s phase changed, or it is gone (STOPPING)."""
        self._rollup.replica(
            replica.id, replica.model, replica.revision, replica.requested,
            replica.phase in COUNTED, self.clock(),
        )  # fmt: skip

    def answered(
        self, model_key: str, revision: str, status: int, prompt: int, completion: int
    ) -> None:
        """The gateway's hook: a request to ``model_key``'s ``revision`` finished."""
        self._rollup.answered(model_key, revision, status, prompt, completion, self.clock())

    def flush(self) -> None:
        """Add what accrued to the store (kept in memory for the next try if that fails)."""
        batch = self._rollup.take(self.clock())
        if not batch:
            return
        try:
            self.store.add(batch)
        except Exception:
            self._rollup.put_back(batch)  # not lost: the next flush tries again
            raise
        for (namespace, model, revision, _), used in batch.items():
            self._totals.setdefault((namespace, model, revision), Usage()).add(used)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.flush()
            except Exception:
                log.exception("recording usage failed; trying again in %.0f s", self.interval)

    def rows(
        self, namespace: str | None, since_hour: int, step: int = HOUR
    ) -> list[tuple[Key, Usage]]:
        """Kept hours from ``since_hour`` on, with what accrued since the last flush, summed
        by ``step`` as ``UsageStore.rows`` does."""
        return self._with_pending(self.store.rows(namespace, since_hour, step), namespace,
                                  since_hour, step)  # fmt: skip

    async def read(
        self, namespace: str | None, since_hour: int, step: int = HOUR
    ) -> list[tuple[Key, Usage]]:
        """``rows``, with the table read in a thread (the loop keeps serving meanwhile) and
        what is pending in memory added on the loop that owns it."""
        kept = await asyncio.to_thread(self.store.rows, namespace, since_hour, step)
        return self._with_pending(kept, namespace, since_hour, step)

    def _with_pending(
        self, kept: list[tuple[Key, Usage]], namespace: str | None, since_hour: int, step: int
    ) -> list[tuple[Key, Usage]]:
        merged = dict(kept)
        for (ns, model, revision, hour), used in self._rollup.pending(self.clock()).items():
            if hour >= since_hour and namespace in (None, ns):
                bucket = since_hour + (hour - since_hour) // step * step
                merged.setdefault((ns, model, revision, bucket), Usage()).add(used)
        return list(merged.items())

    def totals(self) -> dict[Revision, Usage]:
        """Everything so far, per namespace, Model and revision: the metrics' counters."""
        found = {key: _copy(used) for key, used in self._totals.items()}
        for (namespace, model, revision, _), used in self._rollup.pending(self.clock()).items():
            found.setdefault((namespace, model, revision), Usage()).add(used)
        return found


def _copy(used: Usage) -> Usage:
    copied = Usage()
    copied.add(used)
    return copied
