#!/usr/bin/env bash
# Runs EMR Ledger on this machine with its embedded defaults (README, Quick start):
# builds the web application into web/dist when it is missing or older than its
# sources, then starts `emr serve`, which serves it at / beside the API.
#
#   deploy/run.sh [emr serve options]
#
# The web build needs Node.js >= 20.19 (Vite 7). When npm is absent it is installed
# from Debian (nodejs, npm); when the Node.js found is older, the server still runs
# and / says how to build the application.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[run]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

node_is_recent() {
  command -v node >/dev/null &&
    node -e 'const [major, minor] = process.versions.node.split(".").map(Number); process.exit(major > 20 || (major === 20 && minor >= 19) ? 0 : 1)'
}

web_is_stale() {
  [ ! -f web/dist/index.html ] ||
    [ -n "$(find web/src web/index.html web/package-lock.json web/openapi.json web/vite.config.ts -newer web/dist/index.html -print -quit)" ]
}

if web_is_stale; then
  if ! command -v npm >/dev/null; then
    say "installing nodejs and npm (Debian packages) for the web application"
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null ||
      say "could not install nodejs and npm"
  fi
  if node_is_recent; then
    say "building the web application (web/dist)"
    npm --prefix web ci --no-audit --no-fund --loglevel=error >/dev/null
    npm --prefix web run --silent build
  else
    say "Node.js >= 20.19 not found ($(node --version 2>/dev/null || echo none)): serving the API without the web application"
  fi
fi

exec cargo run --release --bin emr -- serve "$@"
