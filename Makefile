# One command each: `make run` (install + start the service on monitor.toml),
# `make test` (install + run the tests), `make demo` (install + offline demo).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install run once demo digest test lint bench bench-cycle constraints clean

install: $(VENV)/.installed

# Installs exactly the versions in constraints.txt (refresh them with `make constraints`).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
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

# Resolve the newest versions pyproject.toml allows, in a fresh environment, and pin them.
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install --quiet --upgrade pip
	.venv-constraints/bin/python -m pip install --quiet '.[test]'
	( echo "# Pinned versions for reproducible installs: make constraints refreshes them."; \
	  .venv-constraints/bin/python -m pip freeze --all --exclude news-monitor --exclude pip ) > constraints.txt
	rm -rf .venv-constraints

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
