# Two entry points on a fresh machine: `make demo` and `make test`. Both bootstrap .venv from python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

# The install also compiles the matching engine with mypyc where it can (setup.py), so it runs again
# whenever the engine's source changes: reference_exchange.engine refuses a stale compiled build.
$(STAMP): pyproject.toml setup.py reference_exchange/matching.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m capacity.cli.demo

# pytest exits 5 when it collected nothing: that is a broken set-up, never a pass.
test: $(STAMP)
	$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests - failing" >&2; exit 1; fi; \
	exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check capacity reference_exchange tests benchmarks
	$(BIN)/mypy

# Generated output only: reports/baselines holds the committed baseline the CI gate compares against.
clean:
	rm -rf $(VENV) reports/runs reports/sweeps reports/bench reports/latest

# Every benchmark (a few minutes; `make bench BENCH_ARGS=--quick` for the short versions): figures beside
# their goals, PASS/MISS, into reports/bench/latest.json. See docs/benchmarks.md.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)
