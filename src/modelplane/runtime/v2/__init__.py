"""The Open Inference Protocol v2 (KServe v2 / Triton HTTP) adapter of the runtime."""
