"""One attempt at one replica: the request sent, its answer read whole or relayed as a stream,
and the replica's record kept — attempts outstanding (for balancing and the metrics) and
consecutive failures, which eject it for a while — and the engine load its answer reports.

The proxy's retry loops call :meth:`Attempts.whole` and :meth:`Attempts.relay`; ``None`` from
either means the replica never answered (or answered 503) and another may be tried. A replica
whose engine is full answers 429 (``BUSY``): a streamed one is read whole and handed back unsent,
so that another replica may be asked first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping

from opentelemetry import propagate, trace
from pydantic import ValidationError
from starlette.types import Receive, Send

from modelplane.api.adapters import ADAPTERS_HEADER, AdapterReport
from modelplane.gateway import paths, replies
from modelplane.gateway.engine_polling import observe
from modelplane.gateway.routing import Endpoint
from modelplane.gateway.upstream import UpstreamError, UpstreamPool
from modelplane.telemetry import names, tracing
from modelplane.telemetry.gateway_metrics import GatewayMetrics

log = logging.getLogger(__name__)

RETURNED = {  # the replica's headers passed to the client
    "content-type": "Content-Type",
    "inference-header-content-length": "Inference-Header-Content-Length",
    "retry-after": "Retry-After",  # a busy engine says when to come back
}
REVISION_HEADER = "X-Modelplane-Revision"
BUSY = 429  # an engine whose slots and waiting list are full: another replica may have room

Answer = tuple[int, dict[str, str], bytes]  # status, headers, body


def noted_adapters(endpoint: Endpoint, headers: Mapping[str, str]) -> None:
    """Keep what the replica reports of its LoRA adapters, for balancing and status."""
    raw = headers.get(ADAPTERS_HEADER)
    if raw is None or raw == endpoint.adapter_report:
        return
    try:
        report = AdapterReport.model_validate_json(raw)
    except ValidationError:
        return
    endpoint.adapter_report = raw
    endpoint.adapters, endpoint.failed_adapters = frozenset(report.loaded), report.failed


class Attempts:
    def __init__(
        self,
        upstream: UpstreamPool,
        metrics: GatewayMetrics,
        tracer: trace.Tracer | None,
        eject_after: int,  # consecutive failures
        eject_seconds: float,
    ) -> None:
        self._upstream, self.metrics, self._tracer = upstream, metrics, tracer
        self.eject_after, self.eject_seconds = eject_after, eject_seconds

    async def whole(
        self,
        endpoint: Endpoint,
        target: paths.ModelPath,
        method: str,
        body: bytes,
        headers: dict[str, str],
        attempt: int,
    ) -> Answer | None:
        """The replica's whole answer, in a client span of its own when tracing records."""
        if self._tracer is None:
            return await self._attempt(endpoint, target, method, body, headers)
        sent = dict(headers)  # the client's trace context is replaced by this request's
        if not tracing.recording():  # unsampled: pass the decision on, make no span
            propagate.inject(sent)
            return await self._attempt(endpoint, target, method, body, sent)
        attributes = {
            names.ATTR_REVISION: endpoint.revision,
            names.ATTR_REPLICA: endpoint.id,
            names.ATTR_ATTEMPT: attempt,
        }
        with tracing.client_span(self._tracer, method, endpoint.url, sent, attributes) as span:
            result = await self._attempt(endpoint, target, method, body, sent)
            tracing.finish(span, result[0] if result else 502, None if result else "connection")
        return result

    async def _attempt(
        self,
        endpoint: Endpoint,
        target: paths.ModelPath,
        method: str,
        body: bytes,
        headers: dict[str, str],
    ) -> Answer | None:
        try:
            with self._outstanding(endpoint, target):
                answer = await self._upstream.request(
                    endpoint.url, method, target.upstream(), headers, body
                )
        except (UpstreamError, TimeoutError) as exc:
            log.info("replica %s failed: %r", endpoint.id, exc)
            self._failed(endpoint)
            return None
        self._answered(endpoint, answer.status)
        noted_adapters(endpoint, answer.headers)
        observe(endpoint, answer.headers)
        returned = {RETURNED[k]: v for k, v in answer.headers.items() if k in RETURNED}
        return answer.status, returned, answer.body

    async def relay(
        self,
        endpoint: Endpoint,
        target: paths.ModelPath,
        body: bytes,
        headers: dict[str, str],
        receive: Receive,
        send: Send,
    ) -> int | Answer | None:
        """A streamed answer passed on as it comes: the status sent to the client; a busy
        engine's refusal, unsent."""
        gone = asyncio.ensure_future(replies.disconnected(receive))
        answering = False  # once the status line went out, there is no retrying
        try:
            with self._outstanding(endpoint, target):
                async with self._upstream.stream(
                    endpoint.url, "POST", target.upstream(), headers, body
                ) as answer:
                    self._answered(endpoint, answer.status)
                    noted_adapters(endpoint, answer.headers)
                    observe(endpoint, answer.headers)
                    if answer.status == 503:
                        return None
                    returned = {RETURNED[k]: v for k, v in answer.headers.items() if k in RETURNED}
                    if answer.status == BUSY:  # a short refusal: read whole, sent by the caller
                        return BUSY, returned, b"".join([c async for c in answer.chunks])
                    returned[REVISION_HEADER] = endpoint.revision
                    raw = [(k.lower().encode(), v.encode("latin-1")) for k, v in returned.items()]
                    start = {"type": "http.response.start", "status": answer.status, "headers": raw}
                    await send(start)
                    answering = True
                    # The client leaving closes the replica stream, which stops the work there.
                    finished = await replies.relay_body(answer.chunks, gone, send)
                    return int(answer.status) if finished else 499
        except (UpstreamError, TimeoutError) as exc:
            log.info("replica %s failed: %r", endpoint.id, exc)
            self._failed(endpoint)
            if not answering:
                return None
            # Mid-stream: end it with an error event, as the runtime does, not a hung stream.
            message = f"replica {endpoint.id} of {target.key} failed mid-stream: {exc!r}"
            event = b"data: " + replies.openai_error(message, 502) + b"\n\n"
            await send({"type": "http.response.body", "body": event})
            return 502
        finally:
            gone.cancel()

    @contextlib.contextmanager
    def _outstanding(self, endpoint: Endpoint, target: paths.ModelPath) -> Iterator[None]:
        """An attempt in flight at a replica: counted for balancing and in the metrics."""
        in_flight = self.metrics.in_flight.labels(target.key, endpoint.revision)
        endpoint.outstanding += 1
        in_flight.inc()
        try:
            yield
        finally:
            endpoint.outstanding -= 1
            in_flight.dec()

    def _answered(self, endpoint: Endpoint, status: int) -> None:
        """A replica answered: 503 counts towards ejecting it, anything else clears its record."""
        if status == 503:
            self._failed(endpoint)
        else:
            endpoint.consecutive_failures = 0

    def _failed(self, endpoint: Endpoint) -> None:
        endpoint.consecutive_failures += 1
        if endpoint.consecutive_failures >= self.eject_after:
            endpoint.ejected_until = time.monotonic() + self.eject_seconds
