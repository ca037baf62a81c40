# One command each: `make run` (install + start the service on monitor.toml),
# `make test` (install + run the tests), `make demo` (install + offline demo).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install run once demo digest test lint bench bench-cycle clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: install
	$(BIN)/monitor run

once: install
	$(BIN)/monitor once

demo: install
	$(BIN)/monitor demo

digest: install
	$(BIN)/monitor digest

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check monitor tests bench
	$(BIN)/ruff format --check monitor tests bench

bench: install
	$(BIN)/python bench/bench_match.py

bench-cycle: install
	$(BIN)/python bench/bench_cycle.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
