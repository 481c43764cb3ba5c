#!/usr/bin/env bash
# One-shot GPU benchmark (`make bench-gpu`): per-stage and whole-chain images/s at batch 1/16/64, fp16 vs
# fp32, GPU memory peak and utilisation, CPU cores needed to feed the GPU. Production-sized models with
# random weights (nothing is downloaded); needs only the project's install step (`make install`).
# Exits 2 with a message when there is no CUDA GPU; `bash bench/gpu.sh --cpu-smoke` checks the script on
# the CPU. The whole run is capped at 8 minutes (the script itself stops starting measurements at 7).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
exec timeout 480 "$PY" bench/gpu.py "$@"
