#!/usr/bin/env bash
# The benchmark suite in one command: every benchmark binary of emr-tests, each
# printing its figures beside a baseline measured in the same run.
#
#   tests/bench.sh [--smoke] [--out DIR]
#
# Default: release builds at the sizes docs/benchmarks.md reports (tens of minutes).
# --smoke: debug builds at tiny sizes, so CI proves every benchmark still builds,
#          runs and passes its own checks (rebuild equals incremental, …); its
#          figures mean nothing.
# Writes DIR/benchmarks.md (each benchmark's Markdown, with the machine) and
# DIR/benchmarks.json ({"machine": …, "<bench>": <its JSON>}); DIR defaults to
# target/bench. Needs the services tests/run.sh provides (nats-server binary,
# MariaDB, Redis).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) mode=smoke ;;
    --out) out="$2"; shift ;;
    *) echo "usage: tests/bench.sh [--smoke] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
out="${out:-$target_dir/bench}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# name and arguments, per mode
if [ "$mode" = smoke ]; then
  profile=(); bin_dir="$target_dir/debug"
  runs=("bench-core 40 4" "bench-projections 300 jetstream" "bench-audit 300" "bench-attachments 2" "bench-api 40 4" "bench-backup 300" "bench-detection 33 2 small" "bench-bridge 3" "bench-federated 10000 3,5 2" "bench-bulk-export 20" "bench-diagnosis 1" "bench-patient-search 300")
else
  profile=(--release); bin_dir="$target_dir/release"
  runs=("bench-core 2000 32" "bench-projections 20000 jetstream" "bench-audit 20000" "bench-attachments 1024" "bench-api 2000 32" "bench-backup 20000" "bench-detection 60 6" "bench-bridge 30" "bench-federated 1000000 10,100 20" "bench-bulk-export 100000" "bench-diagnosis 20" "bench-patient-search 100000")
fi

say() { printf '\033[1m[bench]\033[0m %s\n' "$*" >&2; }
say "building the benchmarks (${mode})"
# emr-cli too: bench-backup runs the real `emr backup` / `emr restore`.
cargo build --locked -q -p emr-tests -p emr-cli --bins "${profile[@]}"

machine="$(printf '{"mode":"%s","cpus":%s,"memory_kib":%s,"kernel":"%s","rustc":"%s","nats_server":"%s"}' \
  "$mode" "$(nproc)" "$(awk '/MemTotal/ {print $2}' /proc/meminfo)" "$(uname -r)" \
  "$(rustc --version)" "$( (nats-server --version 2>/dev/null || /usr/sbin/nats-server --version 2>/dev/null || echo unknown) | head -1)")"
{
  echo "# Benchmarks ($mode run, $(date -u +%Y-%m-%dT%H:%M:%SZ))"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(rustc --version)."
  echo
} > "$out/benchmarks.md"
json="{\"machine\":$machine"
for run in "${runs[@]}"; do
  set -- $run
  name="$1"; shift
  say "$name $*"
  rm -f "$out/$name.json"
  # Each benchmark runs in the output directory and writes <name>.json there.
  (cd "$out" && "$bin_dir/$name" "$@") > "$out/$name.md"
  grep -v -E '^\{.*\}$' "$out/$name.md" >> "$out/benchmarks.md" || true
  echo >> "$out/benchmarks.md"
  figures="$(cat "$out/$name.json" 2>/dev/null || true)"
  json="$json,\"$name\":${figures:-null}"
done
echo "$json}" > "$out/benchmarks.json"
say "wrote $out/benchmarks.md and $out/benchmarks.json"
