# syntax=docker/dockerfile:1
# Gongdan: one image for every role.
#
#   docker build -t gongdan .
#   docker run --rm --env-file prod.env gongdan migrate             # once per release, before the rollout
#   docker run -d -p 8000:8000 --env-file prod.env gongdan          # web (default: serve on 0.0.0.0:8000)
#   docker run -d --env-file prod.env gongdan serve --host 0.0.0.0 --port 8000 --workers 2
#   docker run -d --env-file prod.env gongdan worker                # arq worker (needs REDIS_URL)
#
# Configuration is environment only (docs/deploy.md lists every variable). Give `docker stop` at least 30 s
# (`--stop-timeout 30`, compose `stop_grace_period: 30s`): uvicorn finishes in-flight requests for up to 20 s.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- assets: WeUI's stylesheet for the H5 pages, as `make assets` fetches it --------------------------------------
# Optional: without it (no registry access) the H5 pages use their own fallback CSS, so a failure here is not fatal.
FROM node:20-slim AS assets
WORKDIR /assets
RUN mkdir -p weui \
    && { npm install --silent --no-save --no-package-lock --prefix /assets weui@2 \
         && cp node_modules/weui/dist/style/weui.min.css weui/ \
         || echo "WeUI not fetched: the H5 pages will use their fallback CSS"; }

# ---- build: a virtualenv with the dependencies, then the project -------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/gongdan
ENV PATH=/opt/gongdan/bin:$PATH
WORKDIR /src

# Dependencies in a layer of their own, rebuilt only when pyproject.toml changes: installing the project from its
# pyproject.toml alone installs every dependency (the package itself is empty here and removed again).
COPY pyproject.toml ./
RUN pip install . && pip uninstall --yes gongdan

# The project itself (.dockerignore keeps tests, bench, docs, local data and .env out of the context).
COPY . .
COPY --from=assets /assets/weui ./static/vendor/weui
RUN pip install --no-deps .

# Files the wheel leaves out but the code reads next to its modules: package data that pyproject's package-data
# patterns miss (e.g. app/notifications/templates/*.txt), and static/, which h5/web.py looks for beside the h5
# package. Only what is missing is copied, so this step becomes a no-op once the packaging ships them itself.
RUN site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && for pkg in app h5 simulator wecom_sync approvals; do \
         [ -d "$site/$pkg" ] || continue; \
         find "$pkg" -type f ! -name '*.py' ! -name '*.pyc' ! -path '*/__pycache__/*' \
           -exec sh -c 'for f; do [ -e "$0/$f" ] || { echo "adding $f"; cp --parents "$f" "$0"; }; done' "$site" {} +; \
       done \
    && if [ -d static ] && [ -d "$site/h5" ]; then \
         mkdir -p "$site/static" && cp -r static/. "$site/static/" && rm -rf "$site/static/vendor/node_modules"; \
       fi \
    && gongdan --help > /dev/null

# ---- runtime: the virtualenv, a non-root user, nothing else ------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/gongdan/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GONGDAN_ENV=production \
    DATA_DIR=/app/data
RUN groupadd --system --gid 10001 gongdan \
    && useradd --system --uid 10001 --gid gongdan --home-dir /app --shell /usr/sbin/nologin gongdan \
    && mkdir -p /app/data \
    && chown -R gongdan:gongdan /app
COPY --from=build /opt/gongdan /opt/gongdan
WORKDIR /app
USER gongdan:gongdan

EXPOSE 8000
# Alive check for `serve` (GET /healthz on the port it was given); other roles (worker, migrate) listen on nothing,
# so the check passes for them. /readyz (database + Redis) is for the load balancer, not for restarts.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import glob, sys, urllib.request\nport = None\nfor path in glob.glob('/proc/[0-9]*/cmdline'):\n    try:\n        argv = open(path, 'rb').read().split(b'\\0')\n    except OSError:\n        continue\n    if b'serve' in argv and any(a.endswith(b'gongdan') for a in argv):\n        port = argv[argv.index(b'--port') + 1].decode() if b'--port' in argv else '8000'\n        break\nif port is None:\n    sys.exit(0)\nurllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)\n"]

ENTRYPOINT ["gongdan"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
