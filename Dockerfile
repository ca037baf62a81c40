# news-monitor service image. Build: docker build -t news-monitor .
# Run:   docker run -v "$PWD/data:/app/data" news-monitor
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip install --no-cache-dir .
COPY rules ./rules
COPY monitor.toml ./

RUN useradd --create-home --uid 10001 monitor && mkdir -p /app/data && chown monitor /app/data
USER monitor
VOLUME ["/app/data"]
CMD ["monitor", "run"]
