"""The developer portal: a web UI over the public control API, served beside it.

The page is built from ``frontend/`` (Preact, htm, uPlot, js-yaml; bundled by esbuild) into
``static/``, which ships inside the package, so installing modelplane needs no Node.js and
the portal works without a connection to the internet. It calls only the control API (and
the gateway, for "try it"), so anything it does, the CLI can do.
"""

from modelplane.portal.cors import PortalOrigin
from modelplane.portal.serving import portal_routes

__all__ = ["PortalOrigin", "portal_routes"]
