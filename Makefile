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
.PHONY: help install run test test-slow bench collect plot clean clean-cache xla-gpu-model \
        repro-jacot2018 repro-lee2020 repro-kopitkov2019 repro-resnet-ntk repro-nads

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  %-20s %s\n", $$1, $$2}'

# The installed .venv takes about 3.2 GiB (JAX, TensorFlow for tfds); pip
# needs room beside it while it unpacks. A full disk fails late with pip's
# OSError, so say it first.
INSTALL_GIB ?= 4
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import os, shutil, sys; \
	  where = os.path.dirname(os.path.abspath("$(VENV)")); \
	  free = shutil.disk_usage(where).free / 2**30; \
	  free >= $(INSTALL_GIB) or sys.exit( \
	    f"make: {free:.1f} GiB free under {where}, and installing $(VENV) needs " \
	    f"about $(INSTALL_GIB) GiB (JAX, TensorFlow). Free some space there, or " \
	    f"set VENV=<a path on a larger disk>, and rerun.")'
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

# The kernels as XLA compiles them for an H100, on a machine without one
# (ntkexp/xla_gpu_model.py): JAX's CUDA plugin in an environment of its own,
# by default at .venv's jax, reading ntkexp and its packages from .venv. The H100
# machine's jax instead (0.11.2 on Python 3.12; its Triton kernels differ):
#   make xla-gpu-model XLA_GPU_JAX=0.11.2 XLA_GPU_PYTHON=python3.12
# installs ntkexp itself into .venv-xla-gpu-0.11.2 with that jax pinned.
XLA_GPU_JAX ?=
XLA_GPU_PYTHON ?= $(PYTHON)
XLA_GPU_VENV ?= .venv-xla-gpu$(if $(XLA_GPU_JAX),-$(XLA_GPU_JAX))
XLA_GPU_ARGS ?= --arch myrtle5,cnn_gap,wrn --n 32 --variants default,separate_ntk,padded_first,separate_padded
$(XLA_GPU_VENV)/.installed: $(STAMP)
	$(XLA_GPU_PYTHON) -m venv $(XLA_GPU_VENV)
ifeq ($(XLA_GPU_JAX),)
	jaxlib=$$($(PY) -c 'import jaxlib; print(jaxlib.__version__)'); \
	  $(XLA_GPU_VENV)/bin/python -m pip install -q "jax==$$jaxlib" "jaxlib==$$jaxlib" \
	    "jax-cuda13-plugin==$$jaxlib" "jax-cuda13-pjrt==$$jaxlib"
	site=$$($(XLA_GPU_VENV)/bin/python -c 'import site; print(site.getsitepackages()[0])'); \
	  $(PY) -c 'import site; print(site.getsitepackages()[0])' > $$site/zz_ntkexp.pth; \
	  echo "$(CURDIR)" >> $$site/zz_ntkexp.pth
else
	printf 'jax==%s\njaxlib==%s\n' $(XLA_GPU_JAX) $(XLA_GPU_JAX) > $(XLA_GPU_VENV)/constraints.txt
	$(XLA_GPU_VENV)/bin/python -m pip install -q -c $(XLA_GPU_VENV)/constraints.txt \
	  "jax-cuda13-plugin==$(XLA_GPU_JAX)" "jax-cuda13-pjrt==$(XLA_GPU_JAX)" -e '.[test]'
endif
	touch $@

xla-gpu-model: $(XLA_GPU_VENV)/.installed ## Model the fast kernels as compiled for an H100, without one (XLA_GPU_ARGS)
	JAX_PLATFORMS=cpu $(XLA_GPU_VENV)/bin/python -m ntkexp.xla_gpu_model $(XLA_GPU_ARGS)

# Your own runs (ntkexp run ...) -> one table -> figures; RUNS and TABLE pick others.
RUNS ?= runs
TABLE ?= results/table
collect: $(STAMP) ## Gather every run under RUNS (default runs/) into TABLE.parquet + TABLE.csv (default results/table)
	$(NTKEXP) collect $(RUNS) -o $(TABLE)

plot: $(STAMP) ## Draw each experiment's figures from TABLE.parquet into FIGURES (default results/figures)
	$(NTKEXP) plot $(TABLE).parquet -o $(or $(FIGURES),results/figures)

clean: ## Remove run records (not results/)
	rm -rf runs outputs multirun

clean-cache: ## Remove the kernel and data cache (paths.cache; recomputed when needed)
	rm -rf "$${NTKEXP_CACHE:-$${NTKEXP_HOME:-.}/.cache/ntkexp}"

include mk/repro.mk
