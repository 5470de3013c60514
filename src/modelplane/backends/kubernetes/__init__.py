"""Kubernetes mode: the operator that turns ``Model`` resources into Deployments, Services and
routes, reconciling by state with the same ``modelplane.control`` logic as embedded mode."""
