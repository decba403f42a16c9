# syntax=docker/dockerfile:1
# The gateway worker image: `docker build -t ai-gateway .` at the repository top.
#
# Two stages on the same base: the builder installs the hash-locked runtime dependencies and the project
# into a virtual environment; the final stage gets only that environment (no compiler, no pip cache, no
# source tree, nothing of the test extra, no Java: the local Kafka broker is a development tool).
#
# The base is pinned by its multi-platform index digest: a tag moves with every rebuild upstream, a
# digest does not, so the same Dockerfile gives the same base until someone bumps it on purpose (this
# one is Python 3.11.16 on Debian 12). To bump it, resolve the tag and replace the digest in both FROM
# lines: `docker buildx imagetools inspect python:3.11-slim-bookworm` (its "Digest:" line).

FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS builder

# No cache to keep in a layer that is thrown away anyway; no version check against the registry.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv
RUN python -m venv "$VIRTUAL_ENV"
ENV PATH="$VIRTUAL_ENV/bin:$PATH"
WORKDIR /build

# Dependencies first: this layer is rebuilt only when the lock changes, not at every source edit.
# --require-hashes: every file must match a hash of the lock; --no-deps: nothing outside the lock.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

# The project itself (its dependencies are all in the environment already). devtools/ stays out: the
# local broker launcher, the benchmark and the test workers have no use in production.
COPY pyproject.toml README.md ./
COPY gateway_app/ gateway_app/
COPY agents_tables/ agents_tables/
RUN pip install --no-deps .


FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

LABEL org.opencontainers.image.title="ai-gateway" \
      org.opencontainers.image.description="AI gateway worker (faust-streaming on Kafka, RocksDB tables)"

# A fixed uid/gid, so that volume ownership and a Kubernetes securityContext (runAsUser, fsGroup,
# runAsNonRoot) can name it. The data directory is created owned by it before VOLUME: a fresh named
# volume copies that ownership.
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gateway \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/gateway

COPY --from=builder /opt/venv /opt/venv

# The web server listens on every interface of the container (faust binds 0.0.0.0 whatever the host
# setting). GATEWAY_WEB_HOST is left to the deployment on purpose: it is the address the other workers
# reach this one at (Kubernetes: the pod's DNS name), which no image can know, and a non-loopback value
# needs GATEWAY_WEB_READ_TOKENS. Unset, the worker starts with no token; /health and /ready are open.
ENV VIRTUAL_ENV=/opt/venv \
    PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_DATA_DIR=/var/lib/gateway \
    GATEWAY_WEB_PORT=6066

# RocksDB tables: a warm restart on the same volume restores only what changed since (the changelog
# topics stay the source of truth, so losing the volume costs a full restore, not data).
VOLUME ["/var/lib/gateway"]
WORKDIR /var/lib/gateway
USER 10001:10001
EXPOSE 6066

# Liveness of the web server (and so of the event loop); /ready is for traffic routing, not for restarts.
# Python, not curl: the slim base has no curl, and one more package is one more thing to patch.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", \
         "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ['GATEWAY_WEB_PORT'], timeout=4)"]

# SIGTERM starts the graceful stop: stop reading, let admitted messages finish (at most
# GATEWAY_SHUTDOWN_GRACE_SECONDS, default 20; those already publishing get ~10 s more), commit, and leave
# the group (a static member, GATEWAY_INSTANCE_ID, does not leave: it is expected back). Give the runtime
# a stop timeout above that (`docker run --stop-timeout 60`, Kubernetes' terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["gateway", "worker"]
CMD ["-l", "info"]
