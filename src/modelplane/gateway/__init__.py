"""The data-plane router: routing table, balancing, retries, the activator, per-revision metrics."""
