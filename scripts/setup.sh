#!/usr/bin/env bash
# Set up everything coursehub needs on this machine; safe to run again.
#   - Debian packages (when root): nss_wrapper, Node.js, npm, Chromium, bubblewrap,
#     Docker's engine and docker-compose, debootstrap, if missing
#   - .venv: coursehub (editable), JupyterHub, nbgrader, test tools, from the lock
#   - node_modules: configurable-http-proxy, from package-lock.json
#   - the servers' environment (when root): /opt/coursehub/user-env, readable by every uid
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-/usr/bin/python3}
USER_ENV=${COURSEHUB_USER_ENV:-/opt/coursehub/user-env}
LOCK=requirements/constraints.txt
step() { printf '==> %s\n' "$*"; }

# Debian's Python: a pyenv Python inside a 0700 home cannot be run by the servers' uids.
if [ "$(id -u)" = 0 ]; then
  need=()
  [ -x "$PY" ] || need+=(python3)
  "$PY" -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
  ls /usr/lib/*-linux-gnu/libnss_wrapper.so >/dev/null 2>&1 || need+=(libnss-wrapper)
  command -v node >/dev/null || need+=(nodejs)
  command -v npm >/dev/null || need+=(npm)
  [ -x /usr/bin/chromium ] || need+=(chromium)  # the browser tests drive Debian's Chromium
  command -v bwrap >/dev/null || need+=(bubblewrap)  # the grading sandbox
  command -v docker-compose >/dev/null || need+=(docker-compose)  # runs rendered compose files
  command -v dockerd >/dev/null || need+=(docker.io)  # the Docker host's tests start an engine
  command -v debootstrap >/dev/null || need+=(debootstrap)  # ... and make its base image
  if [ ${#need[@]} -gt 0 ]; then
    step "Installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

PIP_QUIET=(--quiet --disable-pip-version-check --no-warn-script-location)
# Run pip quietly; keep its exit status and its real errors.
pipq() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }
stamp() { cat "$LOCK" pyproject.toml | sha256sum | cut -c1-16; }

if [ ! -x .venv/bin/python ]; then
  step "Creating .venv"
  "$PY" -m venv .venv
fi
if [ "$(cat .venv/.coursehub-stamp 2>/dev/null)" != "$(stamp)" ]; then
  step "Installing coursehub and its locked dependencies into .venv"
  pipq .venv/bin/pip install "${PIP_QUIET[@]}" -c "$LOCK" -e '.[test,docker]'
  .venv/bin/python -c 'import coursehub, jupyterhub, nbgrader' 
  stamp > .venv/.coursehub-stamp
fi

if [ ! -x node_modules/.bin/configurable-http-proxy ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "Installing configurable-http-proxy from npm"
  npm ci --silent --no-audit --no-fund >/dev/null
fi
ln -sf "$ROOT/node_modules/.bin/configurable-http-proxy" .venv/bin/configurable-http-proxy

if [ "$(id -u)" = 0 ]; then
  # The servers' environment: outside this checkout, so that uids that own
  # nothing here can still run it (the checkout may sit in a 0700 home).
  if [ "$(cat "$USER_ENV/.coursehub-stamp" 2>/dev/null)" != "$(stamp)" ]; then
    step "Building the servers' environment in $USER_ENV"
    mkdir -p "$(dirname "$USER_ENV")"
    chmod 755 "$(dirname "$USER_ENV")"
    [ -x "$USER_ENV/bin/python" ] || "$PY" -m venv "$USER_ENV"
    pipq "$USER_ENV/bin/pip" install "${PIP_QUIET[@]}" -c "$LOCK" jupyterhub nbgrader jupyterlab notebook ipykernel pyyaml jsonschema requests
    stamp > "$USER_ENV/.coursehub-stamp"
  fi
  # coursehub itself, always fresh (its exchange classes run in every server)
  rm -rf build/wheel
  pipq .venv/bin/pip wheel --quiet --disable-pip-version-check --no-deps -c "$LOCK" -w build/wheel . >/dev/null
  pipq "$USER_ENV/bin/pip" install "${PIP_QUIET[@]}" --no-deps --force-reinstall build/wheel/coursehub-*.whl
  chmod -R a+rX "$USER_ENV"
fi
step "Setup done"
