# ntkexp: `make run` and `make test` work on a fresh clone (they create .venv).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NTKEXP := $(VENV)/bin/ntkexp
SIZE ?= small
STAMP := $(VENV)/.installed
# Test processes (pytest-xdist): the cores, at most 4. The tests are mostly
# XLA compilations, one core each; on 2 cores this takes the default run from
# 11.5 to 7.7 minutes.
TEST_JOBS ?= $(shell n=$$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2); echo $$(( n < 4 ? n : 4 )))
PYTEST := $(PY) -m pytest -q -n $(TEST_JOBS) --dist worksteal

.DEFAULT_GOAL := help
.PHONY: help install run test test-slow bench collect plot clean \
        repro-jacot2018 repro-lee2020 repro-kopitkov2019 repro-resnet-ntk repro-nads

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  %-20s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install ntkexp with its test tools

run: $(STAMP) ## Run the default job (NNGP/NTK kernel regression, FC ReLU, sklearn digits)
	$(NTKEXP) run

test: $(STAMP) ## Run the fast test suite in TEST_JOBS processes (slow tests: make test-slow)
	$(PYTEST)

test-slow: $(STAMP) ## Run every test, slow ones included
	$(PYTEST) -m ''

bench: $(STAMP) ## Benchmark against plain neural-tangents (float32, then the kernels in float64, as runs use); CSVs under results/bench/
	$(PY) -m ntkexp.bench
	$(PY) -m ntkexp.bench --only infinite --dtype float64

clean: ## Remove run records (not results/)
	rm -rf runs outputs multirun

include mk/repro.mk
