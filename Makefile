# creatorlens — the commands the README names. Only Python 3.11 is needed beforehand.
#   make demo   install, build sample data, run every asset for every sample batch, print a summary
#   make test   install (with test extras) and run the whole suite
#   make ui     start the Dagster UI on the same instance and warehouse
#   make app    start the review and search app (http://127.0.0.1:8000) on the same warehouse
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STATE_DIR ?= $(CURDIR)/.creatorlens
export CREATORLENS_STATE_DIR ?= $(STATE_DIR)
export DAGSTER_HOME ?= $(STATE_DIR)/dagster_home
PYTEST_ARGS ?=
TEST_WORKERS ?= 2

.PHONY: install browser demo test ui validate bench bench-gpu clean help app

help:
	@grep -E '^#   make' Makefile | sed 's/^#   //'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/creatorlens demo

# The browser tests drive Debian's Chromium (Playwright's own browser download cannot work here).
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

# PYTHONPATH: Dagster's multiprocess step workers re-import test modules by name.
test: install browser
	PYTHONPATH=$(CURDIR) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

validate: install
	$(BIN)/creatorlens init >/dev/null
	$(BIN)/dagster definitions validate -w workspace.yaml

# Starts the warehouse and `dagster dev`; one Ctrl-C stops both (orchestration/cli/ui.py).
ui: install
	$(BIN)/creatorlens init
	$(BIN)/creatorlens ui

bench: install
	$(BIN)/python bench/promotion.py
	$(BIN)/python bench/decode_pdq.py
	$(BIN)/python bench/sensor_tick.py
	$(BIN)/python bench/enrich_faults.py
	$(BIN)/python bench/vision.py
	$(BIN)/python bench/vector_search.py
	$(BIN)/python bench/embeddings.py
	$(BIN)/python bench/search.py

# One GPU, one shot, under 8 minutes: bench/gpu.py's table (exits 2 without a CUDA GPU).
bench-gpu: install
	PYTHON=$(BIN)/python bash bench/gpu.sh

# `make app PORT=8080` (or CREATORLENS_APP_PORT=8080, which `app serve` reads itself); default 8000.
app: install
	$(BIN)/creatorlens init >/dev/null
	$(BIN)/creatorlens app serve $(if $(PORT),--port $(PORT))

clean:
	rm -rf $(STATE_DIR)
