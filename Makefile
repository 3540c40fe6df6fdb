# The README's two commands: `make demo` (set-up + the CPU demo) and `make test` (set-up + the tests).
# Each installs what it needs into .venv: the demo the pipeline (`.[workflow]`), the tests everything
# (`.[dev]`). `orthoreg prepare-data` (the pipeline's first job) finds, installs or downloads the data.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
GPUS ?= 4
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo test lint paper gpu-check clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[$*]'
	touch $@

demo: $(VENV)/.installed-workflow
	snakemake --cores all --configfile config/demo.yaml

test: $(VENV)/.installed-dev lint
	pytest -q

lint: $(VENV)/.installed-dev
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks
	mypy

paper: $(VENV)/.installed-workflow
	snakemake --cores all --resources gpu=$(GPUS)

gpu-check: $(VENV)/.installed-dev
	python benchmarks/gpu_check.py --out results/gpu_check.json

clean-demo:  # the demo's own runs (listed in its grid), tables and figures; other configs' runs stay
	test ! -f results/grids/demo.json || $(PYTHON) -c "import json, shutil; [shutil.rmtree(run['run_dir'], ignore_errors=True) for run in json.load(open('results/grids/demo.json'))]"
	rm -rf results/tables/demo figures/demo results/grids/demo.json
