# One image for every platform process; the compose command picks which one
# (`worker`, `channel-worker --channel sms`, `topics apply`, `simulate`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject's pinned list, so a code change does not reinstall
# them. Every one ships a manylinux wheel: no compiler is needed in the slim image.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The project itself (setuptools needs the README that pyproject names).
COPY README.md topics.yaml rules.yaml routing.yaml banks.yaml alembic.ini ./
COPY streams ./streams
COPY agents ./agents
COPY channels ./channels
COPY simulator ./simulator
COPY oversight ./oversight
COPY bench ./bench
COPY migrations ./migrations
RUN pip install --no-deps . && rm -rf build ./*.egg-info

# Installed into site-packages, the settings' defaults (next to the package) point at a
# read-only directory without topics.yaml; name the image's real paths instead.
ENV ANTIFRAUD_TOPICS_FILE=/app/topics.yaml \
    ANTIFRAUD_RULES_FILE=/app/rules.yaml \
    ANTIFRAUD_ROUTING_FILE=/app/routing.yaml \
    ANTIFRAUD_BANKS_FILE=/app/banks.yaml \
    ANTIFRAUD_LEDGER_MIGRATIONS_DIR=/app/migrations \
    ANTIFRAUD_RUN_DIR=/var/lib/antifraud

# Non-root; run_dir exists and is owned by the user so a named volume mounted there
# inherits that ownership (Faust table stores of the worker live in it).
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent antifraud \
 && mkdir -p /var/lib/antifraud \
 && chown antifraud:antifraud /var/lib/antifraud
USER antifraud

# Prometheus endpoint (ANTIFRAUD_METRICS_PORT in docker-compose.yml).
EXPOSE 9100

ENTRYPOINT ["antifraud"]
CMD ["--help"]
