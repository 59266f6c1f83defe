# syntax=docker/dockerfile:1
#
# One image for every ridestream process; the command picks the service:
#   docker build -t ridestream:0.1.0 .
#   docker run --rm ridestream:0.1.0 predictor        # or monitor, retrainer, replay, train ...
# The `mlflow` target is the same image plus the PostgreSQL driver, entrypoint `mlflow`
# (docker-compose.yml runs `mlflow server` from it). The default target is `runtime`.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: a virtualenv with the pinned dependencies, then the project ---------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY deploy/docker/constraints.txt /opt/constraints.txt
COPY pyproject.toml README.md ./
# Dependencies alone first (read from pyproject.toml), so this slow layer survives code edits;
# the constraints pin them to the versions the test suite ran with.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt -c /opt/constraints.txt
COPY ridestream ridestream
COPY producer producer
COPY predictor predictor
COPY monitor monitor
COPY retrainer retrainer
COPY backtest backtest
RUN pip install --no-deps . && ridestream --version

# -- base: the virtualenv on a clean slim image, a non-root user ----------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Mount points are created here: a new named volume copies their ownership, so the non-root
# user can write /workspace (Evidently) and /mlartifacts (MLflow); /data is mounted read-only.
RUN groupadd --system --gid 10001 ridestream \
    && useradd --system --uid 10001 --gid ridestream --create-home ridestream \
    && mkdir -p /app /data /workspace /mlartifacts \
    && chown ridestream:ridestream /app /workspace /mlartifacts
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/constraints.txt /opt/constraints.txt
WORKDIR /app

# -- mlflow: the tracking server with the PostgreSQL driver ---------------------------------
FROM base AS mlflow
RUN pip install psycopg2-binary -c /opt/constraints.txt
USER ridestream
EXPOSE 5000
ENTRYPOINT ["mlflow"]
CMD ["server", "--host", "0.0.0.0", "--port", "5000"]

# -- runtime (default): `ridestream <command>` ---------------------------------------------
FROM base AS runtime
USER ridestream
# The metrics port of the services (RIDESTREAM_METRICS_PORT) and the Evidently UI.
EXPOSE 9100 8000
ENTRYPOINT ["ridestream"]
CMD ["--help"]
