# make demo  — set up .venv (pinned), build the offline model, run the demo experiment
# make test  — same setup, then the whole test suite (the slow SmolLM2 tests included)
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.diq-installed

.PHONY: help setup demo test test-fast lint results check-results clean-cache

help:
	@echo "make demo           set up .venv, build SmolLM2 offline, run experiment=demo (DIQ 10 %)"
	@echo "make test           the whole test suite (what CI runs)"
	@echo "make test-fast      the tests not marked slow"
	@echo "make lint           ruff (pyflakes, pycodestyle errors, import order, bugbear; pyproject [tool.ruff])"
	@echo "make results        rebuild results/demo.* from the demo runs under runs/ (after make demo)"
	@echo "make check-results  every committed results/*.md matches its CSV"
	@echo "make clean-cache    remove .diq_cache (models, scores, adapters, evaluations)"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	# compat mode: the repo root goes on sys.path, so Hydra discovers hydra_plugins/diq_launcher (diq_slurm)
	$(PY) -m pip install -q -e ".[launchers,dev,bench]" --config-settings editable_mode=compat
	touch $(STAMP)

demo: setup
	WANDB_MODE=offline $(PY) -m diq.run experiment=demo

test: setup
	WANDB_MODE=disabled $(PY) -m pytest -q -p no:cacheprovider tests

test-fast: setup
	WANDB_MODE=disabled $(PY) -m pytest -q -m "not slow" tests

lint: setup
	$(VENV)/bin/ruff check diq tests hydra_plugins

results: setup
	$(PY) -m diq.report --records runs/demo runs/demo_random --table demo

check-results: setup
	$(PY) -m diq.report --check

clean-cache:
	rm -rf .diq_cache
