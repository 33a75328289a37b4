#!/usr/bin/env bash
# Data preparation against pandas and DuckDB on this machine (docs/data-prep.md,
# docs/benchmarks.md): the same 10 steps (join, filter, fill missing, one-hot, scale, datetime
# parts, lag, rolling mean, group aggregate, dedupe) over ROWS events (default 10,000,000), as a
# Quiver recipe (bench/prep/recipe.json), in pandas and in DuckDB SQL (bench/prep/others.py),
# each in a process of its own, one after the other. Prints seconds, rows and peak RSS per
# system, Quiver's speed-up against each and its memory against DuckDB's, and how long a preview
# of every step takes on that source.
#
#   bash bench/prep.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-10000000}"
source deploy/build-env.sh
VENV="${QUIVER_BENCH_VENV:-$HOME/.cache/quiver/bench-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q pandas pyarrow duckdb numpy
cargo build --release -p quiver-prep --bin quiver-prep-bench -q
WORK="$(mktemp -d /tmp/quiver-prep-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
"$VENV/bin/python" bench/prep/data.py "$WORK" "$ROWS"
echo "Quiver"
"$CARGO_TARGET_DIR/release/quiver-prep-bench" bench/prep/recipe.json "$WORK" "$WORK/quiver.parquet" | tee "$WORK/results.jsonl"
for system in duckdb pandas; do
  echo "$system"
  "$VENV/bin/python" bench/prep/others.py "$system" "$WORK" "$WORK/$system.parquet" | tee -a "$WORK/results.jsonl"
done
echo
"$VENV/bin/python" bench/prep/summarize.py "$WORK/results.jsonl" "$ROWS"
