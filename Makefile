# Two commands on a fresh machine (see README):
#   make demo   - create .venv, install, run the demo (a real scan through an adaptive pool)
#   make test   - create .venv, install everything, run every test (unit, notebooks, browser)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint lab bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[notebooks,dask,dev,metrics,aio]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/adaptive-lab demo

test: $(STAMP)
	$(BIN)/ruff check adaptive_lab tests
	$(BIN)/mypy
	ADAPTIVE_LAB_CI=1 $(BIN)/python -m pytest tests notebooks \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=300 \
		--nbval-sanitize-with notebooks/sanitize.cfg

lint: $(STAMP)
	$(BIN)/ruff check adaptive_lab tests
	$(BIN)/mypy

lab: $(STAMP)
	$(BIN)/adaptive-lab lab

bench: $(STAMP)
	$(BIN)/adaptive-lab bench --profile all --policy all --output results/benchmark_results.json --html results/report.html

clean:
	rm -rf $(VENV) results out screenshots
