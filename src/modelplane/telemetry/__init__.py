"""Metrics and tracing set-up; every metric and attribute name lives here.

Nothing is registered at import: components build their metrics on a registry they are given.
"""
