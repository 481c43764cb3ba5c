# One image for the webserver, the daemon and the user-code servers (CPU). The GPU user-code
# server uses the same image with an NVIDIA device reservation (see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DAGSTER_HOME=/opt/dagster/home
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/creatorlens
COPY pyproject.toml README.md ./
COPY creatorlens creatorlens
COPY orchestration orchestration
COPY assets assets
COPY resources resources
COPY gpu_ops gpu_ops
COPY sql sql
COPY taxonomy taxonomy
RUN pip install --no-cache-dir -e . && mkdir -p $DAGSTER_HOME
COPY deploy/dagster.prod.yaml $DAGSTER_HOME/dagster.yaml
COPY workspace.yaml deploy/workspace.docker.yaml ./
