#!/usr/bin/env bash
# A/B of two quiver-server binaries in one run: does a change make GetRecord or PutRecord
# cheaper? On this shared machine only a side-by-side comparison tells.
#
#   bash bench/ab-servers.sh SERVER_A SERVER_B [ROUNDS] [SECONDS] [RECORDS]   (defaults 5, 8, 200,000)
#
# Make the two binaries by building each version (`cargo build --release -p quiver-server`) and
# copying `$CARGO_TARGET_DIR/release/quiver-server` aside. Both servers start on fresh data dirs
# (WAL periodic) and get RECORDS records of 50 features; then, each round, quiver-bench put and
# get run SECONDS each against A and B in turn, 50 requests in flight. Prints each run's req/s,
# p99 and the CPU client and server used per request.
set -euo pipefail
cd "$(dirname "$0")/.."
A_BIN="$(realpath "$1")"; B_BIN="$(realpath "$2")"
ROUNDS="${3:-5}"; SECONDS_RUN="${4:-8}"; RECORDS="${5:-200000}"
source deploy/build-env.sh
cargo build --release -p quiver-client --bin quiver-bench -q
BENCH="$CARGO_TARGET_DIR/release/quiver-bench"
WORK="$(mktemp -d /tmp/quiver-ab.XXXXXX)"
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; sleep 1; rm -rf "$WORK"' EXIT

start() { # name, binary; prints the gRPC port
  RUST_LOG=warn "$2" --data-dir "$WORK/$1" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    --flight-sql-addr 127.0.0.1:0 --addr-file "$WORK/$1.json" --wal-sync periodic >"$WORK/$1.log" 2>&1 &
  echo $! >"$WORK/$1.pid"
  for _ in $(seq 600); do [ -s "$WORK/$1.json" ] && break; sleep 0.1; done
  python3 -c "import json;print(json.load(open('$WORK/$1.json'))['grpc'].rsplit(':',1)[1])"
}
declare -A PORT=([A]="$(start A "$A_BIN")" [B]="$(start B "$B_BIN")")
qb() { # A or B, args...
  local who=$1; shift
  QUIVER_SHARED_CREDENTIALS_FILE=/dev/null HOME="$WORK" "$BENCH" --endpoint "http://127.0.0.1:${PORT[$who]}" \
    --server-pid "$(cat "$WORK/$who.pid")" --records "$RECORDS" --features 50 --concurrency 50 --json "$@"
}
echo "loading $RECORDS records into each server"
qb A get --requests 1 >/dev/null
qb B get --requests 1 >/dev/null
sleep 20 # let the loads' flushes and compactions finish
printf '%-5s %-4s %-6s %9s %9s %12s %12s\n' round op server req/s p99 "client CPU" "server CPU"
for round in $(seq "$ROUNDS"); do for op in put get; do for who in A B; do
  sleep 3
  qb $who $op --skip-load --duration "$SECONDS_RUN" | python3 -c "
import json, sys
r = json.load(sys.stdin)
c = r['cpu_us_per_request']
print('%-5s %-4s %-6s %9.0f %7.2fms %9.1f us %9.1f us' % ('$round', '$op', '$who', r['requests_per_second'],
      r['latency_ms']['p99'], c['client'], c['server']))"
done; done; done
