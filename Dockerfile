# kubecost-worker: one image for every role (run, once, schedule, consume, serve, migrate...).
#
#   docker build -t kubecost-worker:0.1.0 .
#   docker run --rm -e KCW_THANOS_URL=http://thanos-query:9090 kubecost-worker:0.1.0 once
#
# Needs BuildKit (the default builder since Docker 23, and buildx/podman): the final stage installs the
# wheels through a bind mount of the build stage, so they never become a layer of the final image.
# For reproducible builds, pin the base image by digest as well (python:3.11.14-slim-bookworm@sha256:...).

# ---- build: the project's wheel and a wheel of every dependency (all are binary wheels: no compiler) ----
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src

# pyproject.toml names README.md as the long description, and installs migrations/*.sql as data files
# (<venv>/share/kubecost-worker/migrations, where the migration runner of an installed copy looks).
COPY pyproject.toml README.md ./
COPY migrations ./migrations
COPY kubecost_worker ./kubecost_worker

RUN pip wheel --no-cache-dir --wheel-dir /wheels . \
 && python -c "import glob, sys, zipfile; \
names = zipfile.ZipFile(glob.glob('/wheels/kubecost_worker-*.whl')[0]).namelist(); \
sys.exit(0 if any(n.endswith('.sql') and '/share/kubecost-worker/migrations/' in n for n in names) \
         else 'the wheel holds no migrations')"

# ---- runtime: a venv with the wheels, nothing else (no compiler, no pip cache, no source tree) ----
FROM python:3.11.14-slim-bookworm

LABEL org.opencontainers.image.title="kubecost-worker" \
      org.opencontainers.image.description="Kubecost cost metrics in Thanos -> hourly Kubernetes expenses in ClickHouse" \
      org.opencontainers.image.version="0.1.0"

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links=/wheels /wheels/kubecost_worker-*.whl \
 && test -d /opt/venv/share/kubecost-worker/migrations \
 && groupadd --gid 10001 kcw \
 && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin kcw \
 && mkdir -p /data \
 && chown 10001:10001 /data \
 && chmod 0750 /data

# Byte code was compiled at install time; at run time the root filesystem may be read-only.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KCW_LOG_FORMAT=json \
    KCW_API_HOST=0.0.0.0 \
    KCW_DATA_DIR=/data

# /data holds local state: the embedded ClickHouse (chDB) when KCW_CLICKHOUSE_URL is not a server.
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001

# 8080: the read API (KCW_API_PORT); 9108: metrics and health of schedule/consume/run (KCW_METRICS_PORT).
EXPOSE 8080 9108

ENTRYPOINT ["kubecost-worker"]
CMD ["run"]
