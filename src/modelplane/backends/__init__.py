"""Backends apply control-plane plans to the world: local processes, or Kubernetes objects."""
