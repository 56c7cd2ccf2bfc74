# ssl4eo-curate: every target installs what it needs. CONFIG=path selects another config, OUT=dir the output folder.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
OUT ?= out
CONFIG ?=
CFG := $(if $(CONFIG),--config $(CONFIG),)
STAMP := $(VENV)/.installed
PG_EXT := /usr/share/postgresql/15/extension/postgis.control

.PHONY: install system-deps archive demo sample download shard catalog verify report test lint bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[server,dev]"
	@touch $(STAMP)

install: $(STAMP)

# PostgreSQL 15 + PostGIS for the embedded STAC API (stac-fastapi-pgstac). Debian packages; needs root.
system-deps:
	@if [ ! -f $(PG_EXT) ] || ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then echo "error: PostGIS or Chromium is missing; run 'sudo apt-get install postgresql-15-postgis-3 chromium' (or run make as root)" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15-postgis-3 chromium >/dev/null; \
	fi

archive: install
	$(BIN)/ssl4eo archive build $(CFG)

demo: install
	$(BIN)/ssl4eo archive build $(CFG)
	$(BIN)/ssl4eo run $(CFG) --out $(OUT)

sample: install
	$(BIN)/ssl4eo sample $(CFG) --out $(OUT)

download: install
	$(BIN)/ssl4eo download $(CFG) --out $(OUT)

shard: install
	$(BIN)/ssl4eo shard $(CFG) --out $(OUT)

catalog: install
	$(BIN)/ssl4eo catalog $(CFG) --out $(OUT)

verify: install
	$(BIN)/ssl4eo verify $(OUT)

report: install
	$(BIN)/ssl4eo report $(OUT)

test: install system-deps
	$(BIN)/ssl4eo archive build
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .

bench: install system-deps
	$(BIN)/ssl4eo archive build
	$(BIN)/python tests/bench/run.py --out $(OUT)/bench $(BENCH)

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache
