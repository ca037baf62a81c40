# news-monitor service image.
#
#   docker build -t news-monitor .
#   docker run -d --name news-monitor \
#     -v "$PWD/monitor.toml:/config/monitor.toml:ro" -v "$PWD/rules:/config/rules:ro" \
#     -v news-monitor-data:/data news-monitor
#
# /config holds monitor.toml and rules/ (the image carries defaults; mount yours over them),
# /data the database, its lock file and the outbox. `docker kill -s HUP news-monitor` reloads
# the config and rules; `docker stop` lets the service finish cleanly (SIGTERM).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first, in a layer of their own that code changes do not rebuild: exactly the
# versions in constraints.txt (the file `make install` and CI use too).
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
# Then the package itself, with the rule pack and starter config as package data.
COPY README.md monitor.toml ./
COPY monitor ./monitor
COPY rules ./rules
RUN pip install -c constraints.txt .

# The service runs as an unprivileged user that owns only its data folder.
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin monitor \
    && mkdir -p /config /data \
    && chown monitor:monitor /data
COPY monitor.toml /config/monitor.toml
COPY rules /config/rules

ENV MONITOR_CONFIG=/config/monitor.toml \
    MONITOR_DATABASE=/data/monitor.db \
    MONITOR_OUTBOX=/data/outbox

USER monitor
WORKDIR /data
VOLUME ["/data"]
# /healthz and /metrics when [health] listen (or --health-port) is set.
EXPOSE 9108
STOPSIGNAL SIGTERM
# Healthy while the scheduler ticks: the service records each tick in the database.
HEALTHCHECK --interval=60s --timeout=15s --start-period=60s --retries=3 \
    CMD ["monitor", "status", "--check"]
CMD ["monitor", "--log-format", "json", "run"]
