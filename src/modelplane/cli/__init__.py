"""The ``modelplane`` command: the composition root that builds every component and runs it."""
