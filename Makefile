# crowd-replicate: every command sets itself up on a fresh machine (creates .venv from requirements.txt).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUILD := build/notebooks
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# The local data mirror (see README); a checkout with shared/ beside it finds it without this.
export CROWD_DATA_DIR ?= $(abspath ../shared/data)
export PYTHONHASHSEED := 0

.PHONY: help install test unit smoke reproduce verify verify-quick report bench bench-quick strip refresh clean

help: ## list the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

install: $(STAMP) ## create .venv with the pinned packages (done by every other command)

test: $(STAMP) ## unit tests + every notebook in smoke mode under nbval + verify-quick (what CI runs)
	$(PY) -m pytest tests notebooks --nbval-lax -p no:cacheprovider -q
	$(MAKE) --no-print-directory verify-quick

unit: $(STAMP) ## unit tests only
	$(PY) -m pytest tests -q

smoke: $(STAMP) ## run every notebook with its smoke parameters into build/notebooks
	@mkdir -p $(BUILD)
	@for nb in $(NOTEBOOKS); do \
		echo "== $$nb (smoke)"; \
		$(PY) -m papermill --cwd notebooks $$nb $(BUILD)/$$(basename $$nb) -p mode smoke || exit 1; \
	done

reproduce: $(STAMP) ## run every notebook in full mode (the papers' settings; GPU used when present), then the report
	@mkdir -p $(BUILD)
	@for nb in $(NOTEBOOKS); do \
		echo "== $$nb (full)"; \
		$(PY) -m papermill --cwd notebooks $$nb $(BUILD)/$$(basename $$nb .ipynb)_full.ipynb -p mode full || exit 1; \
	done
	$(MAKE) report

verify: $(STAMP) ## re-run the CPU-feasible full modes (stated subsets) and check results/*_full.csv bit for bit
	CROWD_DEVICE=cpu $(PY) -m crowd.reporting.verify

verify-quick: $(STAMP) ## the verify checks CI runs on every change (notebook 00 in full mode, ~1 min)
	CROWD_DEVICE=cpu $(PY) -m crowd.reporting.verify --cheap

report: $(STAMP) ## gather every reproduced table into results/REPORT.md
	$(PY) -m crowd.reporting.report full

strip: $(STAMP) ## strip notebook outputs except cells tagged keep_output
	$(PY) -m crowd.reporting.nbtools strip $(NOTEBOOKS)

BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: benchmarks/requirements-bench.txt
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -r benchmarks/requirements-bench.txt
	@touch $@

bench: $(STAMP) $(BENCH_VENV)/.installed ## time our MV/DS/one-coin/GLAD against crowd-kit and peerannot (results/bench*.csv, figures/bench_scaling.png)
	$(PY) -m benchmarks.bench --reference

bench-quick: $(STAMP) ## the seconds-long benchmark variant (also run by make test)
	$(PY) -m benchmarks.bench --quick

clean: ## remove build outputs (keeps .venv and reference results)
	rm -rf build figures/*.png figures/*.pdf results/*_smoke.csv results/*_smoke.meta.json results/REPORT.md

refresh: $(STAMP) ## re-run one notebook in smoke mode and store its tagged outputs (NB=notebooks/NN_x.ipynb)
	@test -n "$(NB)" || { echo "usage: make refresh NB=notebooks/NN_topic.ipynb"; exit 2; }
	$(PY) -m crowd.reporting.nbtools refresh $(NB)
