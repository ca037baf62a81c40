# One command each: `make run` (install + start the service on monitor.toml),
# `make test` (install + run the tests), `make demo` (install + offline demo).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install browser run once demo digest test lint bench bench-cycle bench-first-cycle constraints clean

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

# The browser tests drive Debian's headless Chromium; install it when it is missing.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	    $(if $(filter 0,$(shell id -u)),,sudo) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

test: install browser
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check monitor tests bench
	$(BIN)/ruff format --check monitor tests bench

bench: install
	$(BIN)/python bench/bench_match.py

bench-cycle: install
	$(BIN)/python bench/bench_cycle.py

bench-first-cycle: install
	$(BIN)/python bench/bench_first_cycle.py --rounds 3

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
