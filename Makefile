# Everything runs from a project-local virtualenv built from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run server client test lint format bench clean browser redis-server screenshot wrk

# The Redis store's tests run a real redis-server (Debian's package); installed when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)        ## open the dashboard (starts an embedded server if none answers)
	$(PY) -m tui $(ARGS)

server: $(STAMP)     ## run the simulation server in the foreground
	$(PY) -m server $(ARGS)

client: $(STAMP)     ## run the headless polling client
	$(PY) -m client_core $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

browser:             ## the system Chromium the web-mode test drives (installed when missing)
	bash .ci/install-browser

test: lint browser redis-server  ## lint, types, architecture contracts, then the whole test suite
	@# Two workers, one test file each at a time: much of the suite waits on the servers it
	@# starts, so two cores run it in about two thirds of the time.
	$(PY) -m pytest -q -n 2 --dist loadfile

redis-server:        ## install redis-server for the tests, only if it is missing
	@command -v redis-server >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

screenshot: $(STAMP) ## retake the main-screen snapshot and copy it to the README's picture
	$(PY) -m pytest -q tests/tui/test_snapshots.py -k "test_main_screen and not sizes" --snapshot-update
	cp tests/tui/__snapshots__/test_snapshots/test_main_screen.svg docs/dashboard.svg

wrk:                 ## the load generator the benchmarks drive the server with (installed when missing)
	bash .ci/install-wrk

bench: $(STAMP) wrk  ## benchmarks: prints tables, writes bench/results/*.json
	$(PY) -m bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
