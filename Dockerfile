# The bot as a container: `docker build -t animate-bot .` then see compose.yaml.
# Settings come from the environment (compose's env_file: .env); nothing secret is baked in.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A Japanese font for the spending chart (matplotlib's own font has no Japanese glyphs).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-ipafont-gothic \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install '.[postgres]' \
    && useradd --create-home --uid 10001 animate \
    && mkdir /data \
    && chown animate /data

USER animate
WORKDIR /data
# Listen on every interface inside the container (callbacks, /healthz, /metrics); the SQLite
# file, when no DATABASE_URL is given, lives in the /data volume.
ENV HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    DATABASE_PATH=/data/animate.db
EXPOSE 8080
VOLUME ["/data"]

# 503 while the database or a gateway shard is down (see /healthz in docs/operations.md).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HTTP_PORT', '8080'), timeout=4)"]

ENTRYPOINT ["animate-bot"]
