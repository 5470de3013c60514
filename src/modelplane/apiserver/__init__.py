"""The control API of embedded mode: Kubernetes-shaped REST over a ``Store`` (routes, watch,
OpenAPI description, access control, API keys, quotas, git sources, the metrics API)."""
