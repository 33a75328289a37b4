#!/usr/bin/env bash
# GetRecord and PutRecord with security on against all off, in one run on this machine.
#
#   bash bench/security-overhead.sh [RECORDS] [SECONDS]      (defaults 200,000 and 15)
#
# Starts two release servers on fresh data dirs (WAL periodic, as bench/online-vs-redis.sh):
# one plain, one with --auth (every request signed by quiver-bench with the root key and its
# signature, digest, replay window and policy checked by the server). Loads RECORDS records of
# 50 features into each, runs quiver-bench get and put at 50 concurrent requests for SECONDS
# each, alternating servers, and prints throughput, p99 and the slowdown against the 15%
# target. TLS and encryption at rest are not built yet, so "on" is authentication and
# authorization only: the target is for all three.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${1:-200000}"
SECONDS_RUN="${2:-15}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quiver/target}"
cargo build --release --workspace --bins -q
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d /tmp/quiver-security-bench.XXXXXX)"
# The servers start inside command substitutions, so they are not this shell's jobs: their
# pids are kept in files.
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; sleep 1; rm -rf "$WORK"' EXIT

start() { # name, extra args...
  local name=$1; shift
  RUST_LOG=warn "$BIN/quiver-server" --data-dir "$WORK/$name" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    --flight-sql-addr 127.0.0.1:0 --addr-file "$WORK/$name.json" --wal-sync periodic "$@" \
    >"$WORK/$name.log" 2>&1 &
  echo $! >"$WORK/$name.pid"
  for _ in $(seq 600); do [ -s "$WORK/$name.json" ] && break; sleep 0.1; done
  echo "http://$(python3 -c "import json;print(json.load(open('$WORK/$name.json'))['grpc'])")"
}
OFF=$(start off)
ON=$(start on --auth)
CREDS="$WORK/on/root-credentials"

qb() { # endpoint, credentials file or "", args...
  local endpoint=$1 creds=$2; shift 2
  QUIVER_SHARED_CREDENTIALS_FILE="$creds" HOME="$WORK" "$BIN/quiver-bench" --endpoint "$endpoint" \
    --records "$RECORDS" --features 50 --concurrency 50 --json "$@"
}
echo "loading $RECORDS records into each server"
qb "$OFF" "" get --requests 1 >/dev/null
qb "$ON" "$CREDS" get --requests 1 >/dev/null
declare -A R
for round in 1 2; do
  for op in get put; do
    echo "round $round: $op, off then on, ${SECONDS_RUN}s each"
    R[off-$op-$round]=$(qb "$OFF" "" "$op" --skip-load --duration "$SECONDS_RUN")
    R[on-$op-$round]=$(qb "$ON" "$CREDS" "$op" --skip-load --duration "$SECONDS_RUN")
  done
done

python3 - "${R[off-get-1]}" "${R[on-get-1]}" "${R[off-put-1]}" "${R[on-put-1]}" \
  "${R[off-get-2]}" "${R[on-get-2]}" "${R[off-put-2]}" "${R[on-put-2]}" <<'PY'
import json, sys
runs = [json.loads(a) for a in sys.argv[1:]]
for r in runs:
    if r["errors"]:
        sys.exit("errors in a run: %s" % r["first_error"])
print("%-5s %5s %14s %14s %10s %10s %10s" % ("op", "round", "off req/s", "on req/s", "slowdown", "off p99", "on p99"))
for i, (op, rnd) in enumerate([("get", 1), ("put", 1), ("get", 2), ("put", 2)]):
    off, on = runs[2 * i], runs[2 * i + 1]
    slow = 1 - on["requests_per_second"] / off["requests_per_second"]
    print("%-5s %5d %14.0f %14.0f %9.1f%% %8.3fms %8.3fms" % (
        op, rnd, off["requests_per_second"], on["requests_per_second"], 100 * slow,
        off["latency_ms"]["p99"], on["latency_ms"]["p99"]))
for op, idx in (("get", (0, 2)), ("put", (1, 3))):
    off = sum(runs[2 * i]["requests_per_second"] for i in idx)
    on = sum(runs[2 * i + 1]["requests_per_second"] for i in idx)
    slow = 1 - on / off
    print("%s: authentication + authorization cost %.1f%% of throughput (target for TLS + auth + encryption: at most 15%%): %s"
          % (op, 100 * slow, "within" if slow <= 0.15 else "OVER"))
PY
