"""Embedded mode: SQLite store, replica process supervisor, the control API server."""
