# syntax=docker/dockerfile:1
# The podtier image the Helm chart runs: `podtier serve`, as numeric non-root user 65532, on a
# read-only root filesystem, with no shell at runtime.
#
#   docker build -t ghcr.io/podtier/podtier:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: build the wheel from the sources and install it into a self-contained venv ---
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY webhook/ webhook/
COPY certs/ certs/
COPY policies/ policies/
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
 && python -m venv /opt/podtier \
 && /opt/podtier/bin/pip install /dist/podtier-*.whl \
 && /opt/podtier/bin/python -m compileall -q /opt/podtier/lib

# --- runtime: the same Python base, the venv, and nothing that needs a shell ---
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="podtier" \
      org.opencontainers.image.description="Admission webhook that tiers and places Apache Airflow worker pods" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/podtier/podtier"
COPY --from=builder /opt/podtier /opt/podtier
# Remove the shells last (this is the final RUN, so it may still use one): nothing at runtime
# needs them. The chart's preStop pause uses the kubelet's `sleep` action, not `sh -c sleep`.
RUN rm -f /bin/sh /bin/dash /bin/bash /usr/bin/sh /usr/bin/dash /usr/bin/bash
ENV PATH=/opt/podtier/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd. The chart's
# securityContext uses the same id.
USER 65532:65532
WORKDIR /tmp
EXPOSE 8443
ENTRYPOINT ["podtier", "serve"]
