# The README's two commands: `make demo` (set-up + the CPU demo) and `make test` (set-up + the tests).
# Each installs what it needs into .venv: the demo the pipeline (`.[workflow]`), the tests everything
# (`.[dev]`). `orthoreg prepare-data` (the pipeline's first job) finds, installs or downloads the data.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
GPUS ?= 4
export PATH := $(abspath $(BIN)):$(PATH)

# Snakemake 8+ and its SLURM executor plugin need Python >= 3.11 (pyproject.toml's requires-python). The
# interpreter that will run everything (the venv's once it exists, else $(PYTHON)) is checked before any
# target runs, and an older or missing one stops make with one line naming what was found.
PYTHON_NEEDED := 3.11
ifneq ($(filter-out clean-demo,$(or $(MAKECMDGOALS),default)),)
checked_python := $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
found_version := $(shell $(checked_python) --version 2>&1 | sed -n 's/^Python \([0-9][0-9.]*\).*/\1/p')
ifeq ($(checked_python),$(BIN)/python)
python_remedy := $(strip remove $(VENV) and run make $(MAKECMDGOALS) PYTHON=python$(PYTHON_NEEDED) (or newer))
else
python_remedy := $(strip install Python $(PYTHON_NEEDED) or newer and run make $(MAKECMDGOALS) PYTHON=python$(PYTHON_NEEDED))
endif
ifeq ($(found_version),)
$(error orthoreg needs Python >= $(PYTHON_NEEDED), but $(checked_python) was not found or is not Python; $(python_remedy))
endif
ifneq ($(firstword $(shell printf '%s\n' $(PYTHON_NEEDED) $(found_version) | sort -V)),$(PYTHON_NEEDED))
$(error orthoreg needs Python >= $(PYTHON_NEEDED) (Snakemake 8+ and its SLURM plugin), but $(checked_python) is Python $(found_version); $(python_remedy))
endif
endif

.PHONY: demo test lint paper study study-cifar study-verify gpu-check clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[$*]'
	touch $@

demo: $(VENV)/.installed-workflow
	snakemake --cores all --configfile config/demo.yaml

test: $(VENV)/.installed-dev lint  # whole test modules spread over up to 4 workers (one per core)
	pytest -q -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder --durations=15

lint: $(VENV)/.installed-dev
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks
	mypy
	snakemake --lint
	snakefmt --check .

paper: $(VENV)/.installed-workflow
	snakemake --cores all --resources gpu=$(GPUS)

study: $(VENV)/.installed-workflow  # every method x ResNet-8/14/20 x 6 seeds on Fashion-MNIST (config/study.yaml)
	snakemake --cores all --configfile config/study.yaml

study-cifar: $(VENV)/.installed-workflow  # the same study on CIFAR-10/100, for a GPU box
	snakemake --cores all --resources gpu=$(GPUS) --configfile config/study.yaml config/study_cifar.yaml

study-verify: $(VENV)/.installed-workflow  # retrain 3 committed study runs drawn at random; exact agreement
	orthoreg verify --runs results/study --sample $(or $(SAMPLE),3) --seed $(or $(SEED),$(shell date +%s))

gpu-check: $(VENV)/.installed-dev
	python benchmarks/gpu_check.py --out results/gpu_check.json

clean-demo:  # the demo's own runs (listed in its grid), tables and figures; other configs' runs stay
	test ! -f results/grids/demo.json || $(PYTHON) -c "import json, shutil; [shutil.rmtree(run['run_dir'], ignore_errors=True) for run in json.load(open('results/grids/demo.json'))]"
	rm -rf results/tables/demo figures/demo results/grids/demo.json
