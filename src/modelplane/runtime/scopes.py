"""A request's passage through the data plane: counted in flight, timed, and counted once by
its outcome, however it ends.

The data plane opens a :class:`RequestScope` for every request it serves; the v2 ``infer``
endpoint opens one from the request's first byte, the data plane's own calls (generation, a
stream, embeddings, an engine's reply) hold theirs for as long as their answer lasts. The outcome
is the label of the runtime's request counter (``modelplane_runtime_requests_total``); a request
whose client left before it was answered gets none.
"""

from __future__ import annotations

import time
from types import TracebackType

from modelplane.errors import (
    AdapterUnavailableError,
    EngineBusyError,
    InferenceError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelNotReadyError,
    PayloadTooLargeError,
)
from modelplane.telemetry.metrics import RuntimeMetrics

SUCCESS, FAILED, ENGINE_ERROR = "success", "error", "engine_error"

# Most specific first: a PayloadTooLargeError is also an InvalidRequestError.
_OUTCOMES: list[tuple[type[InferenceError], str]] = [
    (PayloadTooLargeError, "too_large"),
    (InvalidRequestError, "invalid"),
    (ModelNotFoundError, "not_found"),
    (ModelNotReadyError, "unavailable"),
    (EngineBusyError, "busy"),
    (AdapterUnavailableError, "adapter_unavailable"),
]


def outcome_of(error: BaseException) -> str:
    """The outcome of a request that ``error`` ended; the model's own failures, and errors that
    are no refusal at all, are ``error``."""
    for kind, outcome in _OUTCOMES:
        if isinstance(error, kind):
            return outcome
    return FAILED


class InFlight:
    """The data plane's requests now: how many are in flight, and how many are still arriving
    (read, decoded, validated), which the batcher waits for before it closes a batch."""

    def __init__(self, metrics: RuntimeMetrics) -> None:
        self.metrics = metrics
        self.arriving = 0

    def open(self) -> RequestScope:
        return RequestScope(self)


class RequestScope:
    """One request, in flight from its opening until :meth:`close`; as a context manager, an
    :class:`InferenceError` that ends the block counts as the request's refusal."""

    def __init__(self, requests: InFlight) -> None:
        self._requests = requests
        self.arriving = True
        self.outcome: str | None = None
        self._closed = False
        self._started = time.perf_counter()
        requests.arriving += 1
        requests.metrics.in_flight.inc()

    def reached_batcher(self) -> None:
        if self.arriving:
            self.arriving = False
            self._requests.arriving -= 1

    def ended(self, outcome: str) -> None:
        """Count the request by ``outcome``, once: the first answer decides it, so a stream that
        fails after it began stays the success its client was told."""
        if self.outcome is None:
            self.outcome = outcome
            self._requests.metrics.count(outcome)

    def served(self) -> None:
        self.ended(SUCCESS)

    def refused(self, error: BaseException) -> None:
        self.ended(outcome_of(error))

    def close(self, error: BaseException | None = None) -> None:
        """Leave the flight, once; ``error``, if it is a refusal, counts as the outcome."""
        if self._closed:
            return
        self._closed = True
        if isinstance(error, InferenceError):
            self.refused(error)
        self.reached_batcher()
        metrics = self._requests.metrics
        metrics.in_flight.dec()
        metrics.request_duration.observe(time.perf_counter() - self._started)

    def __enter__(self) -> RequestScope:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(error)
