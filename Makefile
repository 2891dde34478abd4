# Everything runs from a project-local virtualenv built from uv.lock, the exact versions the
# suite passed with: `make run` installs what the dashboard needs, `make test` adds the test
# and lint tools (pyproject.toml's dev group), `make lock` upgrades the lock.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
UV_VERSION := 0.13.10
UV     := .uv/bin/uv
RUNTIME := $(VENV)/.runtime-installed
DEV     := $(VENV)/.dev-installed

# uv uses this machine's Python (never a download) and its certificate store.
export UV_PYTHON_DOWNLOADS := never
export UV_SYSTEM_CERTS := 1
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Compiled once at install, on both cores, rather than by every process the tests start.
export UV_COMPILE_BYTECODE := 1
SYNC := $(UV) sync --frozen --quiet --python $(PYTHON)

.PHONY: run server client test test-fast lint format bench clean browser redis-server screenshot wrk lock

# The Redis store's tests run a real redis-server (Debian's package); installed when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

$(RUNTIME): pyproject.toml uv.lock | $(UV)
	$(SYNC) --no-dev
	rm -f $(DEV)
	touch $@

$(DEV): pyproject.toml uv.lock | $(UV)
	$(SYNC)
	touch $@ $(RUNTIME)

lock: | $(UV)        ## upgrade every locked version to the newest allowed by pyproject.toml
	$(UV) lock --upgrade --python $(PYTHON)

run: $(RUNTIME)        ## open the dashboard (starts an embedded server if none answers)
	$(PY) -m tui $(ARGS)

server: $(RUNTIME)     ## run the simulation server in the foreground
	$(PY) -m server $(ARGS)

client: $(RUNTIME)     ## run the headless polling client
	$(PY) -m client_core $(ARGS)

lint: $(DEV)
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

test-fast: $(DEV)    ## every test that starts no process (servers, Redis, terminals, browsers)
	$(PY) -m pytest -q -n 2 -m "not slow"

redis-server:        ## install redis-server for the tests, only if it is missing
	@command -v redis-server >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

format: $(DEV)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

screenshot: $(DEV) ## retake the main-screen snapshot and copy it to the README's picture
	$(PY) -m pytest -q tests/tui/test_snapshots.py -k "test_main_screen and not sizes" --snapshot-update
	cp tests/tui/__snapshots__/test_snapshots/test_main_screen.svg docs/dashboard.svg

wrk:                 ## the load generator the benchmarks drive the server with (installed when missing)
	bash .ci/install-wrk

bench: $(DEV) wrk  ## benchmarks: prints tables, writes bench/results/*.json
	$(PY) -m bench $(ARGS)

clean:
	rm -rf $(VENV) .uv .pytest_cache .ruff_cache
