"""Backend-independent control logic: pure functions from desired and observed state to a plan.

Nothing here does I/O or reads a clock: time comes in as an argument, so every decision is
reproducible and testable with fake time. The local and Kubernetes backends apply the plans.
"""
