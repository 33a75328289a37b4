#!/usr/bin/env bash
# Fuzzes every decoder that takes outside bytes (tests/fuzz: cargo-fuzz targets, libFuzzer).
#
#   bash bench/fuzz.sh [SECONDS] [TARGET ...]      (defaults: 1800 s each, every target)
#
# Each target runs for SECONDS of wall time on one core (the CPU seconds it had are printed: one
# that writes files, as ingest_mapping does, gets somewhat less), QUIVER_FUZZ_JOBS
# targets at a time (default: the number of cores). Inputs libFuzzer finds new coverage with
# are kept in tests/fuzz/corpus/<target>/ (commit them: the next run starts from there), and
# the corpus is minimised at the end. Fuzzing goes on past a crash, hang or runaway memory
# (libFuzzer's fork mode), each saved in tests/fuzz/artifacts/<target>/; any of them fails the
# script. Reproduce one with
#   cargo +nightly fuzz run --fuzz-dir tests/fuzz -s none <target> <artifact file>
# and fix it with a regression test beside the code, not here.
#
# Needs the nightly toolchain (installed here with rustup if missing: cargo-fuzz's coverage
# instrumentation is a nightly flag) and cargo-fuzz (installed if missing). The targets link
# the whole server, so the first build takes as long as a release build of it (about 35 min
# here), less the RocksDB C++ when the main release build's librocksdb.a is there to reuse.
# Builds go to ~/.cache/quiver/fuzz; the targets' scratch stores too, emptied each run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-1800}"
shift || true
source deploy/build-env.sh
MAIN_TARGET="$CARGO_TARGET_DIR"
FUZZ_HOME="$HOME/.cache/quiver/fuzz"
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  mapfile -t TARGETS < <(sed -n 's/^name = "\(.*\)"$/\1/p' tests/fuzz/Cargo.toml | grep -v '^quiver-fuzz$')
fi
JOBS="${QUIVER_FUZZ_JOBS:-$(nproc)}"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# RocksDB's C++ takes most of a cold build: link the main release build's archive if it has one.
mkdir -p "$FUZZ_HOME/rocksdb-lib"
ARCHIVE="$(ls -t "$MAIN_TARGET"/release/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -1 || true)"
if [ -n "$ARCHIVE" ]; then
  cp -u "$ARCHIVE" "$FUZZ_HOME/rocksdb-lib/librocksdb.a"
fi
if [ -s "$FUZZ_HOME/rocksdb-lib/librocksdb.a" ]; then
  export ROCKSDB_LIB_DIR="$FUZZ_HOME/rocksdb-lib" ROCKSDB_STATIC=1
fi
export CARGO_TARGET_DIR="$FUZZ_HOME/target"

# The seeds: real documents and requests (tests/fuzz/seeds.py), written when a corpus is empty.
for t in "${TARGETS[@]}"; do
  if [ -z "$(ls -A "tests/fuzz/corpus/$t" 2>/dev/null)" ]; then
    python3 tests/fuzz/seeds.py
    break
  fi
done

# `-s none`: no AddressSanitizer. The code under test is safe Rust (unsafe is denied in the
# workspace), so what fuzzing finds is panics, overflows (checked here: debug assertions are
# on), hangs and runaway memory, and ASan would halve the executions per second.
echo "building the fuzz targets"
cargo +nightly fuzz build --fuzz-dir tests/fuzz -s none
BINS="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"

mkdir -p "$FUZZ_HOME/logs"
run_one() {
  local t="$1" rc=0
  local scratch="$FUZZ_HOME/scratch/$t"
  rm -rf "$scratch" && mkdir -p "$scratch" "tests/fuzz/artifacts/$t"
  # The CPU seconds it had (user + system) go to <target>.cpu.
  local TIMEFORMAT='%U %S'
  { time QUIVER_FUZZ_SCRATCH="$scratch" RUST_LOG=off "$BINS/$t" "tests/fuzz/corpus/$t" \
    -max_total_time="$SECONDS_EACH" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -artifact_prefix="tests/fuzz/artifacts/$t/" >"$FUZZ_HOME/logs/$t.log" 2>&1 || rc=$?; } \
    2>"$FUZZ_HOME/logs/$t.cpu"
  rm -rf "$scratch"
  if [ $rc -eq 0 ] && [ -z "$(ls -A "tests/fuzz/artifacts/$t")" ]; then
    echo "$t: done"
  else
    echo "$t: FAILED"
  fi
}
export -f run_one
export SECONDS_EACH FUZZ_HOME BINS
FAILED=()
started=$(date +%s)
# Up to JOBS targets at once, each on one core.
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {}' \
  | tee "$FUZZ_HOME/logs/summary.txt"
while read -r line; do
  case "$line" in *FAILED) FAILED+=("${line%%:*}") ;; esac
done <"$FUZZ_HOME/logs/summary.txt"

# Minimise each corpus (keep the smallest inputs that cover the same), so the repository keeps
# what matters.
for t in "${TARGETS[@]}"; do
  dir="tests/fuzz/corpus/$t"
  before=$(ls "$dir" | wc -l)
  min="$(mktemp -d)"
  scratch="$FUZZ_HOME/scratch/$t-merge"
  mkdir -p "$scratch"
  QUIVER_FUZZ_SCRATCH="$scratch" RUST_LOG=off "$BINS/$t" -merge=1 -timeout=30 -rss_limit_mb=4096 \
    "$min" "$dir" >"$FUZZ_HOME/logs/$t.merge.log" 2>&1 || true
  rm -rf "$scratch"
  if [ "$(ls "$min" | wc -l)" -gt 0 ]; then
    find "$dir" -type f ! -name 'seed-*' -delete
    cp -n "$min"/* "$dir"/
  fi
  rm -rf "$min"
  echo "$t corpus: $before inputs, $(ls "$dir" | wc -l) after minimising"
done

echo
printf '%-18s %12s %10s %9s %8s %s\n' target executions exec/s cpu_s corpus result
for t in "${TARGETS[@]}"; do
  log="$FUZZ_HOME/logs/$t.log"
  # Fork mode's last progress line: `#<executions>: cov: ... exec/s: <rate> ...`.
  last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1)
  runs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
  rate=$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' <<<"$last")
  result=ok
  [[ " ${FAILED[*]-} " == *" $t "* ]] && result="FOUND: $(ls "tests/fuzz/artifacts/$t" | tr '\n' ' ')"
  cpu=$(awk '{printf "%d", $1 + $2}' "$FUZZ_HOME/logs/$t.cpu" 2>/dev/null || echo '?')
  printf '%-18s %12s %10s %9s %8s %s\n' "$t" "${runs:-?}" "${rate:-?}" "$cpu" \
    "$(ls "tests/fuzz/corpus/$t" | wc -l)" "$result"
done
echo "wall time $(( $(date +%s) - started )) s; logs in $FUZZ_HOME/logs"
[ ${#FAILED[@]} -eq 0 ]
