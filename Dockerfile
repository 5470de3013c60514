# The modelplane image: the CLI, the model runtime (`modelplane serve`, what model pods run) and
# the operator (`modelplane operator`). Build: docker build -t ghcr.io/modelplane/modelplane:0.1.0 .
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install ".[kubernetes]"

FROM python:3.11-slim-bookworm
COPY --from=build /install /usr/local
# A numeric non-root user: Pod Security "restricted" checks runAsNonRoot against it.
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin modelplane
USER 10001
EXPOSE 8080
ENTRYPOINT ["modelplane"]
CMD ["--help"]
