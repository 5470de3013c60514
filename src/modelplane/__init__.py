"""modelplane: declare a model, serve it behind one gateway, roll it out safely."""

__version__ = "0.1.0"
