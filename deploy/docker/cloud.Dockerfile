# syntax=docker/dockerfile:1.7
# The MallPulse cloud image: one image for migrate, api, ingest, Celery worker and beat.
# Build from the repository root:
#   docker build -f deploy/docker/cloud.Dockerfile -t mallpulse/cloud:0.1.0 .
# The container runs as an unprivileged user with a read-only root filesystem; only /tmp is
# writable (an emptyDir / tmpfs in Kubernetes and compose).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/mallpulse
WORKDIR /src
# Dependencies first (pinned by the CI lock file) so code changes reuse this layer.
COPY pyproject.toml README.md ./
COPY requirements/ci.txt requirements/ci.txt
COPY edge edge
COPY cloud cloud
COPY protos protos
COPY mallpulse mallpulse
RUN /opt/mallpulse/bin/pip install -c requirements/ci.txt ".[cloud]" \
    && /opt/mallpulse/bin/python -m compileall -q /opt/mallpulse

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="mallpulse-cloud" \
      org.opencontainers.image.description="MallPulse cloud core: migrate, api, ingest, workers" \
      org.opencontainers.image.licenses="Apache-2.0"
# tini reaps children and forwards SIGTERM so every process shuts down cleanly as PID 1.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 mallpulse \
    && useradd --system --uid 10001 --gid mallpulse --home-dir /nonexistent \
       --shell /usr/sbin/nologin mallpulse
COPY --from=build /opt/mallpulse /opt/mallpulse
ENV PATH=/opt/mallpulse/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLPULSE_API_HOST=0.0.0.0 \
    MALLPULSE_GRPC_BIND=0.0.0.0:50051 \
    MALLPULSE_LOG_FORMAT=json
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000 50051
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["mallpulse", "cloud", "api"]
