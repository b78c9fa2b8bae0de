# Entry points: make test · make run · make bench · make lint
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: setup test test-fast lint run bench samples clean

setup:
	bash scripts/setup.sh

test: setup
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest

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
