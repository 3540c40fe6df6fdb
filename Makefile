# The README's two commands: `make demo` (set-up + the CPU demo) and `make test` (set-up + the tests).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
GPUS ?= 4
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup demo test lint paper clean-demo

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	snakemake --cores all --configfile config/demo.yaml

test: setup lint
	pytest -q

lint: setup
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks
	mypy

paper: setup
	snakemake --cores all --resources gpu=$(GPUS)

clean-demo:
	rm -rf results/runs/fashion_mnist results/tables/demo figures/demo results/grids/demo.json
