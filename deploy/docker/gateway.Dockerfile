# syntax=docker/dockerfile:1.7
# The MallPulse edge agent as a container, for gateways managed as container hosts (balena,
# k3s, plain Docker). Gateways installed natively use deploy/gateway/install.sh instead.
# Build from the repository root (for ARM gateways add --platform linux/arm64):
#   docker build -f deploy/docker/gateway.Dockerfile -t mallpulse/gateway:0.1.0 .
# Run (config and CA read-only, outbox and weights on a volume, the USB camera passed in):
#   docker run -d --restart unless-stopped --read-only --tmpfs /tmp \
#     -v /etc/mallpulse:/etc/mallpulse:ro -v mallpulse-state:/var/lib/mallpulse \
#     --device /dev/video0 --group-add video mallpulse/gateway:0.1.0
# In edge.yaml: detector.manifest: /opt/mallpulse/models/yolox_nano.yaml (weights in the volume,
# /var/lib/mallpulse/models).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/mallpulse/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/ci.txt requirements/ci.txt
COPY edge edge
COPY cloud cloud
COPY protos protos
COPY mallpulse mallpulse
RUN /opt/mallpulse/venv/bin/pip install -c requirements/ci.txt ".[edge]"

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="mallpulse-gateway" \
      org.opencontainers.image.description="MallPulse edge agent: camera analytics on store gateways" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 mallpulse \
    && useradd --system --uid 10001 --gid mallpulse --groups video --home-dir /var/lib/mallpulse \
       --no-create-home --shell /usr/sbin/nologin mallpulse \
    && install -d -o mallpulse -g mallpulse -m 0750 /var/lib/mallpulse /var/lib/mallpulse/models
COPY --from=build /opt/mallpulse/venv /opt/mallpulse/venv
COPY models/*.yaml /opt/mallpulse/models/
ENV PATH=/opt/mallpulse/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLPULSE_SHARED=/var/lib/mallpulse
USER 10001:10001
VOLUME ["/var/lib/mallpulse"]
# tini forwards SIGTERM: the agent flushes its open windows into the outbox before exiting.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["mallpulse", "edge", "run", "--config", "/etc/mallpulse/edge.yaml"]
