"""What the gateway answers itself, without a replica: liveness and readiness, server metadata,
Prometheus metrics, its OpenAPI description, the OpenAI API's model list, and 405 for a method a
path does not take.

The proxy (:class:`~modelplane.gateway.proxy.Gateway`) sends these paths here before any model is
looked up; all but the model list are open even with authentication on, as probes and scrapers
carry no credential.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.types import Send

from modelplane import __version__
from modelplane.gateway import paths, routing
from modelplane.gateway.replies import error_for, openai_error, reply
from modelplane.gateway.routing import RoutingTable
from modelplane.security.roles import Action, Principal
from modelplane.telemetry.gateway_metrics import GatewayMetrics

PROMETHEUS = b"text/plain; version=0.0.4"


class OwnRoutes:
    def __init__(
        self,
        table: RoutingTable,
        metrics: GatewayMetrics,
        description: bytes,
        is_ready: Callable[[], bool],
        touch: Callable[[str, str], object],  # makes a revision's series exist
    ) -> None:
        self.table, self.metrics, self.description = table, metrics, description
        self.is_ready, self.touch = is_ready, touch

    async def answer(self, path: str, send: Send) -> None:
        """One of :data:`~modelplane.gateway.paths.OWN_PATHS`."""
        if path == "/v2/health/live":
            await reply(send, 200, orjson.dumps({"live": True}))
        elif path == "/v2/health/ready":
            ready = self.is_ready()
            await reply(send, 200 if ready else 503, orjson.dumps({"ready": ready}))
        elif path == "/v2":
            document = {"name": "modelplane-gateway", "version": __version__, "extensions": []}
            await reply(send, 200, orjson.dumps(document))
        elif path == "/metrics":
            for route in self.table.routes():  # a revision's series exist before its traffic
                for revision in route.revisions:
                    self.touch(route.key, revision.name)
            await reply(send, 200, self.metrics.exposition(), PROMETHEUS)
        else:
            await reply(send, 200, self.description)

    async def models(self, path: str, send: Send, principal: Principal) -> None:
        """Every OpenAI model this gateway routes that the caller may use, named as clients
        address them, and their LoRA adapters with their ``parent``."""
        models: dict[str, dict[str, object]] = {}
        for route in self.table.routes():
            namespace = route.key.split("/", 1)[0]
            if not route.openai or not principal.may(Action.READ, namespace):
                continue
            parent = openai_id(route.key)
            models[parent] = _model_object(parent, namespace)
            for adapter in route.adapters:
                named = openai_id(f"{namespace}/{adapter}")
                if self.table.adapter_parent(named) is route:  # not shadowed by a Model
                    models[named] = {**_model_object(named, namespace), "parent": parent}
        if path == paths.MODELS:
            listing = {"object": "list", "data": [models[k] for k in sorted(models)]}
            await reply(send, 200, orjson.dumps(listing))
            return
        wanted = path.removeprefix(paths.MODELS + "/")
        found = models.get(openai_id(routing.model_key(wanted)))
        if found is None:
            message = f"model {wanted!r} is not served by this gateway"
            await reply(send, 404, openai_error(message, 404, "model"))
        else:
            await reply(send, 200, orjson.dumps(found))

    def not_served(self, model: str, namespace: str) -> str:
        """Why ``model`` is refused, with the models and adapters the namespace has."""
        names = []
        for route in self.table.routes():
            if route.openai and route.key.split("/", 1)[0] == namespace:
                names.append(repr(openai_id(route.key)))
                names += [
                    f"{openai_id(f'{namespace}/{a}')!r} (an adapter of {openai_id(route.key)!r})"
                    for a in route.adapters
                ]
        served = ", ".join(names) or "none"
        return f"model {model!r} is not served by this gateway; served in {namespace!r}: {served}"


def _model_object(name: str, namespace: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": namespace}


async def not_allowed(send: Send, path: str, method: str, allowed: tuple[str, ...]) -> None:
    """405 naming the methods ``path`` takes, in its protocol's error shape."""
    message = f"{path} takes {', '.join(allowed)}, not {method}"
    await reply(send, 405, error_for(path, message, 405), headers={"allow": ", ".join(allowed)})


def openai_id(key: str) -> str:
    """How a client names a model: bare in the default namespace, else ``namespace/name``."""
    namespace, name = key.split("/", 1)
    return name if namespace == routing.DEFAULT_NAMESPACE else key
