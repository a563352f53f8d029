# Gongdan: two commands on a fresh machine.
#   make run   - virtualenv, install, migrate, demo data, desk + WeChat simulator on http://127.0.0.1:8000
#   make test  - virtualenv, install, the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test install lint typecheck bench-api bench-callbacks migrations clean assets browser-deps bench-h5

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install assets
	$(BIN)/gongdan run

# WeUI's stylesheet from npm into the git-ignored static/vendor/ (the H5 pages fall back to our own CSS without it).
assets: static/vendor/weui/weui.min.css

static/vendor/weui/weui.min.css:
	-npm install --silent --no-save --no-package-lock --prefix static/vendor weui@2 && \
	  mkdir -p static/vendor/weui && \
	  cp static/vendor/node_modules/weui/dist/style/weui.min.css static/vendor/weui/weui.min.css

# Headless Chromium and a CJK font for the H5 browser tests (Debian packages; idempotent).
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list :lang=zh 2>/dev/null | grep -q .; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	fi

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy app simulator h5 wecom_sync approvals bench

# New migration after a model change (commit the file it writes under app/migrations/).
migrations: install
	GONGDAN_ENV=test $(BIN)/tortoise -c app.db.TORTOISE_ORM makemigrations

bench-api: install
	$(BIN)/python -m bench.api

bench-callbacks: install
	$(BIN)/python -m bench.callbacks

bench-h5: install
	$(BIN)/python -m bench.h5

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
