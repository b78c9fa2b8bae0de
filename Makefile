# Entry points: make test · make ci · make run · make bench · make lint
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: setup setup-openvino test ci test-fast test-docker lint run bench samples clean

setup:
	bash scripts/setup.sh

# The OpenVINO worker's own venv (.venv-ov): MODEL_ENGINE=openvino-int4 / openvino-int8 (docs/engines.md).
setup-openvino:
	bash scripts/setup_openvino.sh

test: setup setup-openvino
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest

# The compose stack on a real Docker engine (installs and starts one if it can): docs/docker.md.
# DOCKER_TEST_FLAGS=--if-engine (CI): skip, saying why, when no engine can be had.
test-docker: setup
	bash scripts/docker/test.sh $(DOCKER_TEST_FLAGS)

# What CI runs (.ci/run): every test, then the Docker test when an engine can be had (else skipped, saying why).
ci: test
	$(MAKE) test-docker DOCKER_TEST_FLAGS=--if-engine

test-fast:
	$(PYTHON) -m pytest -m "not browser"

lint:
	$(PYTHON) -m ruff check .

run: setup
	$(PYTHON) scripts/run_local.py

bench: setup
	$(PYTHON) -m bench

samples:
	$(PYTHON) scripts/samples.py data/samples

clean:
	rm -rf test-artifacts .pytest_cache data/test-model
