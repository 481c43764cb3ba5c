# One image for the webserver, the daemon and both user-code servers; the GPU server's image is the
# same file built with PyPI's torch (a CUDA build) instead of the CPU wheels (docker-compose.yml).
# The NVIDIA driver comes from the host through the container toolkit, not from this image.
FROM python:3.11-slim
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# Optional extras baked in: k8s (K8sRunLauncher, k8s_job_executor; deploy/k8s), ray (ray[data] for a Ray cluster).
ARG EXTRAS=k8s
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DAGSTER_HOME=/opt/dagster/home \
    YOLO_CONFIG_DIR=/opt/dagster/home/ultralytics YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false
RUN apt-get update && apt-get install -y --no-install-recommends build-essential libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/creatorlens
COPY pyproject.toml README.md ./
COPY creatorlens creatorlens
COPY orchestration orchestration
COPY assets assets
COPY resources resources
COPY gpu_ops gpu_ops
COPY app app
COPY sql sql
COPY taxonomy taxonomy
RUN pip install --no-cache-dir --extra-index-url "$TORCH_INDEX_URL" -e ".[${EXTRAS}]" && mkdir -p "$DAGSTER_HOME"
COPY deploy/dagster.prod.yaml $DAGSTER_HOME/dagster.yaml
COPY workspace.yaml ./
COPY deploy/workspace.docker.yaml deploy/workspace.docker.yaml
EXPOSE 3000 4000 4001
