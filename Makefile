# coursehub: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
COURSEHUB := $(VENV)/bin/coursehub
DEMO_SITE := examples/demo-site.yaml
# The demo's data folder must be reachable by the servers' uids: under /srv when root.
DEMO_DATA ?= $(if $(filter 0,$(shell id -u)),/srv/coursehub-demo,$(CURDIR)/demo-data)

.PHONY: setup demo demo-down test unit integration lint format clean bench

setup:
	@bash scripts/setup.sh

demo: setup
	$(COURSEHUB) up --site $(DEMO_SITE) --data-dir $(DEMO_DATA) --detach
	$(COURSEHUB) sample demo101 --data-dir $(DEMO_DATA) --name ps1
	@echo
	@echo "Demo hub: http://127.0.0.1:8000 - log in as 'instructor', 'alice' or 'bob'"
	@echo "with the demo password 'coursehub-demo' (from $(DEMO_SITE))."
	@echo "Stop it with: make demo-down"

demo-down:
	$(COURSEHUB) down --data-dir $(DEMO_DATA)

# Two test files at a time (each file's tests in one process, in order), the longest
# files first (tests/conftest.py): most of the suite waits on servers, so two keep
# both cores busy. TEST_JOBS=1 runs one at a time.
TEST_JOBS ?= 2

test: setup lint
	$(VENV)/bin/python -m pytest -ra -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder

unit: setup
	$(VENV)/bin/python -m pytest -ra tests/unit

integration: setup
	$(VENV)/bin/python -m pytest -ra tests/integration

# coursehub against a plain JupyterHub + nbgrader (bench/README.md); flags in BENCH_ARGS.
bench: setup
	$(VENV)/bin/python -m bench.run $(BENCH_ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: setup
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

clean:
	rm -rf build .pytest_cache demo-data
