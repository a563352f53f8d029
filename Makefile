# Gongdan: two commands on a fresh machine.
#   make run   - virtualenv, install, migrate, demo data, desk + WeChat simulator on http://127.0.0.1:8000
#   make test  - virtualenv, install, the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test install lint typecheck bench-api bench-callbacks migrations clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/gongdan run

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy app simulator

# New migration after a model change (commit the file it writes under app/migrations/).
migrations: install
	GONGDAN_ENV=test $(BIN)/tortoise -c app.db.TORTOISE_ORM makemigrations

bench-api: install
	$(BIN)/python -m bench.api

bench-callbacks: install
	$(BIN)/python -m bench.callbacks

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
