# The modelplane image: the CLI, the model runtime (`modelplane serve`, what model pods run) and
# the operator (`modelplane operator`). Build: docker build -t ghcr.io/modelplane/modelplane:0.1.0 .
# With GGUF models (format: llamacpp): --build-arg EXTRAS=kubernetes,llamacpp
FROM python:3.11-slim-bookworm AS build
ARG EXTRAS=kubernetes
# A compiler and cmake for the extras that build native code (llama-cpp-python).
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" \
    pip install --no-cache-dir --prefix=/install ".[${EXTRAS}]"

FROM python:3.11-slim-bookworm
# llama.cpp computes with OpenMP.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /install /usr/local
# A numeric non-root user: Pod Security "restricted" checks runAsNonRoot against it.
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin modelplane
USER 10001
EXPOSE 8080
ENTRYPOINT ["modelplane"]
CMD ["--help"]
