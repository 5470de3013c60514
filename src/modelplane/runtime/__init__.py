"""The model runtime: one process serves one model revision over the Open Inference Protocol v2.

``server.run`` is the entry point; ``dataplane`` is the transport-neutral core; ``v2`` adapts it to
HTTP; ``formats`` load artifacts; ``batching`` merges concurrent requests into model calls.
"""
