"""What both backends remember of a model's demand between passes, for the autoscaler.

The gateway (in process, or reporting from a cluster) says how many requests are in flight and
held, and when the last one came; this keeps one sample per interval over the stable window and
asks ``control.autoscaling.decide`` for the serving revision's replica count.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from modelplane.api import Scaling
from modelplane.control.autoscaling import STABLE_WINDOW, Sample, decide

SAMPLE_EVERY = timedelta(seconds=0.5)


@dataclass
class Demand:
    samples: deque[Sample] = field(default_factory=deque)
    revision: str = ""  # the newest revision, and when it was first seen
    born: datetime | None = None

    def replicas(
        self,
        scaling: Scaling,
        revision: str,
        current: int,
        in_flight: float,
        last_request: datetime | None,
        now: datetime,
        born: datetime | None = None,
    ) -> int:
        """Replicas for ``revision`` now, given the in-flight (running plus held) requests;
        ``born``: when the revision was created, if known (else: when first asked about it)."""
        # One sample per interval, however often this is asked: the windows average over time.
        if not self.samples or now - self.samples[-1].time >= SAMPLE_EVERY:
            self.samples.append(Sample(now, in_flight))
        while self.samples and self.samples[0].time < now - STABLE_WINDOW:
            self.samples.popleft()
        if self.revision != revision:
            self.revision, self.born = revision, born or now
        # A new revision counts as just used: it starts, proves it loads, then may scale to zero.
        latest = max(t for t in (last_request, self.born) if t is not None)
        return decide(scaling, list(self.samples), current, latest, now).replicas
