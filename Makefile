# ticklake developer targets. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
# The lake the warehouse targets work on (views, migrate, build, refresh, export, shell).
LAKE   ?= lake
TICKLAKE := $(VENV)/bin/ticklake

.DEFAULT_GOAL := help
.PHONY: help venv install install-dev lock system-deps demo test lint typecheck unit doctest bench clean \
	install-dbt install-dagster views migrate build refresh export shell

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(UV): | $(PY)
	$(PY) -m pip install -q --upgrade pip uv

venv: $(UV) ## create the virtual environment (.venv) with uv inside

install: $(UV) ## install ticklake (runtime only) into .venv, at the tested versions
	$(UV) pip install -q --python $(PY) -c constraints.txt -e .

install-dev: $(UV) ## install ticklake with every extra the tests need (dev tools, Ray), at the tested versions
	$(UV) pip install -q --python $(PY) -c constraints.txt -e '.[dev,ray]'

lock: $(UV) ## re-resolve constraints.txt to the newest versions pyproject.toml allows
	$(UV) pip compile -q --upgrade pyproject.toml --extra dev --extra ray --extra postgres --extra delta \
		--python-version 3.11 --custom-compile-command "make lock" -o constraints.txt

system-deps: ## apt packages the tests need: PostgreSQL server binaries, Chromium for the browser tests (skipped when present)
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || dpkg -s postgresql >/dev/null 2>&1; then \
		echo "postgresql: installed"; \
	elif command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	else \
		echo "install PostgreSQL server binaries (initdb, pg_ctl) for the analytics target tests" >&2; \
	fi
	@if [ -x /usr/bin/chromium ]; then \
		echo "chromium: installed"; \
	elif command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "install Chromium at /usr/bin/chromium for the browser tests (tests/e2e)" >&2; \
	fi

# dbt lives in a venv of its own inside .venv: dbt-core pins protobuf and python-dateutil
# below what the main environment uses. The versions are the ones tests/integration/test_dbt.py ran.
DBT_VENV ?= $(VENV)/dbt-env
install-dbt: $(UV) ## dbt-core + dbt-duckdb in their own venv ($(VENV)/dbt-env) for the dbt example test
	@test -x $(DBT_VENV)/bin/python || $(UV) venv -q --python $(PY) $(DBT_VENV)
	$(UV) pip install -q --python $(DBT_VENV)/bin/python dbt-core==1.11.16 dbt-duckdb==1.11.1

# Dagster (the `dagster` extra) also lives in a venv of its own: its grpcio/protobuf pins may fight
# Ray's and constraints.txt. ticklake goes in editable, without extras; tests/unit/test_dagster.py
# runs tests/dagster_env/ with this venv's python. The versions are the ones those tests ran.
DAGSTER_VENV ?= $(VENV)/dagster-env
install-dagster: $(UV) ## dagster + dagster-webserver + ticklake in their own venv ($(VENV)/dagster-env) for the Dagster tests
	@test -x $(DAGSTER_VENV)/bin/python || $(UV) venv -q --python $(PY) $(DAGSTER_VENV)
	$(UV) pip install -q --python $(DAGSTER_VENV)/bin/python dagster==1.13.28 dagster-webserver==1.13.28 pytest==9.2.0 pytest-timeout==2.4.0 -e .

demo: install ## install and run `ticklake demo`
	$(VENV)/bin/ticklake demo --dir demo-lake

lint: ## ruff lint + format check, import-linter layer contracts
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports

typecheck: ## mypy on the package
	$(VENV)/bin/mypy

doctest: ## doctests in the package
	$(VENV)/bin/pytest -q --doctest-modules src/ticklake

unit: ## the test suite
	$(VENV)/bin/pytest -q -n 2 --dist loadfile tests

test: system-deps install-dev install-dbt install-dagster lint typecheck doctest unit ## install everything and run lint, types and all tests

bench: install-dev ## run the benchmarks (prints tables; not part of `make test`)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f; done

clean: ## remove build and test artefacts
	rm -rf .pytest_cache .mypy_cache .ruff_cache demo-lake build dist

# ---- the SQL warehouse (docs/warehouse.md); LAKE=DIR picks the lake
views: ## (re)create the SQL project's views/*.sql in the warehouse (LAKE=lake)
	$(TICKLAKE) sql views --lake $(LAKE)

migrate: ## apply the SQL project's pending migrations (LAKE=lake)
	$(TICKLAKE) sql migrate --lake $(LAKE)

build: ## build the SQL project's models in order (LAKE=lake, MODELS="a b" to pick)
	$(TICKLAKE) sql build $(MODELS) --lake $(LAKE)

refresh: ## refresh the warehouse's generated views over every dataset (LAKE=lake)
	$(TICKLAKE) lake views --lake $(LAKE)

export: ## export a dataset: make export DATASET=silver.bars_1m TO=parquet:out/ (LAKE=lake)
	@test -n "$(DATASET)" -a -n "$(TO)" || { echo "usage: make export DATASET=name TO=target" >&2; exit 2; }
	$(TICKLAKE) export $(DATASET) --to $(TO) --lake $(LAKE)

shell: ## an interactive SQL prompt on the warehouse (LAKE=lake, WRITE=1 to allow changes)
	$(TICKLAKE) sql shell $(if $(WRITE),--write) --lake $(LAKE)
