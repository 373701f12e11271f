#!/usr/bin/env bash
# The reliability and security suite in one command, and docs/reliability.md
# regenerated from its figures:
#
#   tests/reliability.sh [--heavy] [--out FILE]
#
# Runs the fault, crash, disk, concurrency, hostile-input, authentication and
# fuzz tests, the two-process scale test and graceful shutdown against real
# servers (the same tests tests/run.sh runs, at the same sizes unless --heavy),
# each recording its figures, then renders FILE (default
# docs/reliability.md). --heavy: 20,000 fuzz cases per target instead of 300.
# Needs the services tests/run.sh provides (run that once on a fresh machine).
set -euo pipefail
cd "$(dirname "$0")/.."

cases=300
mode=ci
out=docs/reliability.md
while [ $# -gt 0 ]; do
  case "$1" in
    --heavy) cases=20000; mode=heavy; export EMR_FUZZ_SEED="${EMR_FUZZ_SEED:-$(od -An -N6 -tu8 /dev/urandom | tr -d ' ')}" ;;
    --out) out="$2"; shift ;;
    *) echo "usage: tests/reliability.sh [--heavy] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done
say() { printf '\033[1m[reliability]\033[0m %s\n' "$*" >&2; }

report=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$report" "$log"' EXIT
version() { ("$@" 2>/dev/null || true) | head -1; }
cat > "$report/machine.json" <<JSON
{"mode": "$mode", "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "cpus": "$(nproc)",
 "memory_gib": "$(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo)", "kernel": "$(uname -r)",
 "rustc": "$(rustc --version)", "nats_server": "$(version nats-server --version || version /usr/sbin/nats-server --version)",
 "mariadb": "$(version mariadbd --version || version /usr/sbin/mariadbd --version)", "fuzz_cases": "$cases",
 "fuzz_seed": "${EMR_FUZZ_SEED:-fixed}"}
JSON

say "running the suite ($mode${EMR_FUZZ_SEED:+, fuzz seed $EMR_FUZZ_SEED})"
status=0
EMR_RELIABILITY_REPORT="$report" EMR_FUZZ_CASES="$cases" cargo test --locked \
  -p emr-tests --test faults --test concurrency --test fuzz \
  -p emr-cli --test crashes --test disk --test backup --test logs --test prometheus --test read_models --test scale --test shutdown \
  -p emr-http --test hostile --test api --test authorization 2>&1 | tee "$log" || status=$?
cargo run --locked -q -p emr-tests --bin reliability-report -- "$report" "$log" "$out"
exit "$status"
