"""The node cache agent: one per node of a cluster, holding the artifacts the node's pods
fetched, so a pod that starts after another on the same node takes them from here instead of
from the store (``artifacts/node_cache.py`` is the pods' side)."""
