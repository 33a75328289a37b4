#!/usr/bin/env bash
# Online store vs Redis, side by side, in one run on this machine.
#
#   bash bench/online-vs-redis.sh [RECORDS] [SECONDS]      (defaults 1,000,000 and 20)
#
# Starts Redis (Debian's redis-server, AOF with appendfsync everysec) and Quiver (release build,
# fresh data dir, --wal-sync periodic: WAL fsynced every 100 ms, the like-for-like setting) on
# loopback ports, loads RECORDS records of 50 features into Quiver (quiver-bench) and as many
# keys with values as large as Quiver's stored records into Redis (redis-cli --pipe), waits
# for Quiver's flushes and compactions and Redis's AOF rewrite of the load to finish, then runs
# at 50 concurrent requests, each Redis run just before its Quiver counterpart: redis-benchmark
# GET / quiver-bench get, then GetRecord offered at half Redis GET's rate (`--rate`, an open
# loop: the latency at the throughput the target asks for rather than at saturation), MGET of
# 100 keys / batch-get (100), the same at 4 in flight (for latency), SET / put, and the gRPC
# health check (the RPC floor: no storage work); prints a table with the ratios against the
# issue's targets.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${1:-1000000}"
SECONDS_RUN="${2:-20}"
CONCURRENCY=50
source deploy/build-env.sh
ensure_packages redis-server redis-tools
cargo build --release --workspace --bins -q
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d /tmp/quiver-vs-redis.XXXXXX)"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

REDIS_PORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK" --save "" \
  --appendonly yes --appendfsync everysec --daemonize no >"$WORK/redis.log" 2>&1 &
RUST_LOG=warn "$BIN/quiver-server" --data-dir "$WORK/quiver" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --flight-sql-addr 127.0.0.1:0 \
  --addr-file "$WORK/addrs.json" --wal-sync periodic &
QUIVER_PID=$!
for _ in $(seq 600); do [ -s "$WORK/addrs.json" ] && break; sleep 0.1; done
QUIVER="http://$(python3 -c "import json;print(json.load(open('$WORK/addrs.json'))['grpc'])")"
HTTP="$(python3 -c "import json;print(json.load(open('$WORK/addrs.json'))['http'])")"
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done

qb() { "$BIN/quiver-bench" --endpoint "$QUIVER" --records "$RECORDS" --features 50 --concurrency "${IN_FLIGHT:-$CONCURRENCY}" --json "$@"; }
# Waits (at most 120 s) until RocksDB has no flush or compaction running or pending: what the
# runs below measure is serving, not the load's background work (Redis has none to wait for).
settle() {
  local started=$SECONDS
  while [ $((SECONDS - started)) -lt 120 ]; do
    if curl -s "http://$HTTP/metrics" | awk '
      /^quiver_rocksdb_(running_compactions|running_flushes|pending_compaction_bytes) / { busy += $2 }
      END { exit !(NR > 0 && busy == 0) }'; then
      echo "settled after $((SECONDS - started)) s"; return
    fi
    sleep 1
  done
  echo "still compacting after 120 s; measuring anyway"
}
# Waits (at most 120 s) until Redis has no AOF rewrite running or scheduled: loading 1M keys
# grows the AOF past its rewrite threshold, and the rewrite's fork would land in a measurement.
redis_settle() {
  local started=$SECONDS
  while [ $((SECONDS - started)) -lt 120 ]; do
    if redis-cli -p "$REDIS_PORT" info persistence | tr -d '\r' |
      awk -F: '/^aof_rewrite_(in_progress|scheduled):/ { busy += $2 } END { exit busy != 0 }'; then
      return
    fi
    sleep 1
  done
}

echo "loading $RECORDS records into Quiver"
SIZE=$(qb get --requests 1 | python3 -c "import json,sys; print(json.load(sys.stdin)['stored_record_bytes'])")
settle

echo "loading $RECORDS keys of $SIZE bytes into Redis"
# Every key, written through one pipelined connection (redis-benchmark SET -r N would fill only
# about 63% of them: its keys are random, so many are drawn twice). The keys are redis-benchmark's
# own (key:%012d, what -r N draws from), so every GET and MGET below finds its key.
python3 - "$RECORDS" "$SIZE" <<'PY' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
import sys
records, size = int(sys.argv[1]), int(sys.argv[2])
value = b"x" * size
out = sys.stdout.buffer
for start in range(0, records, 10000):
    out.write(b"".join(
        b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$%d\r\n%s\r\n" % (i, size, value)
        for i in range(start, min(start + 10000, records))))
PY
LOADED=$(redis-cli -p "$REDIS_PORT" dbsize)
[ "$LOADED" -eq "$RECORDS" ] || { echo "redis holds $LOADED keys, not $RECORDS" >&2; exit 1; }
redis_settle
REDIS_RSS_KB=$(awk '/VmRSS/ {print $2}' /proc/$(pgrep -f "redis-server 127.0.0.1:$REDIS_PORT" | head -1)/status 2>/dev/null || echo 0)

# Each Redis run right before its Quiver counterpart: this machine's speed drifts over minutes,
# and a pair measured back to back shares the drift.
rb() { redis-benchmark -p "$REDIS_PORT" --csv -r "$RECORDS" -c "${IN_FLIGHT:-$CONCURRENCY}" "$@" | tail -1; }
REQUESTS=$((SECONDS_RUN * 70000))      # about SECONDS_RUN seconds of GET or SET
MGETS=$((SECONDS_RUN * 3000))          # and of MGET
# MGET of 100 keys: Redis's BatchGetRecord.
MGET_KEYS=$(printf 'key:__rand_int__ %.0s' $(seq 100))
echo "GET / GetRecord, ${SECONDS_RUN}s each"
RGET=$(rb -t get -n "$REQUESTS" -d "$SIZE")
GET=$(qb get --skip-load --duration "$SECONDS_RUN")
RSS_KB=$(awk '/VmRSS/ {print $2}' /proc/$QUIVER_PID/status)      # loaded, and its block cache warm
HALF_RATE=$(python3 -c "import csv,io,sys; print(round(float(next(csv.reader(io.StringIO(sys.argv[1])))[1]) / 2))" "$RGET")
echo "GetRecord offered at $HALF_RATE/s, half Redis GET's rate"
PACED=$(qb get --skip-load --duration "$SECONDS_RUN" --rate "$HALF_RATE")
echo "MGET / BatchGetRecord of 100, at 50 and at 4 in flight"
RMGET=$(rb -n "$MGETS" MGET $MGET_KEYS)
BATCH=$(qb batch-get --skip-load --batch-size 100 --duration "$SECONDS_RUN")
RMGET4=$(IN_FLIGHT=4 rb -n "$MGETS" MGET $MGET_KEYS)
BATCH4=$(IN_FLIGHT=4 qb batch-get --skip-load --batch-size 100 --duration "$SECONDS_RUN")
echo "SET / PutRecord, and the gRPC health check"
RSET=$(rb -t set -n "$REQUESTS" -d "$SIZE")
PUT=$(qb put --skip-load --duration "$SECONDS_RUN")
settle      # the puts' flushes and compactions
HEALTH=$(qb health --skip-load --duration "$SECONDS_RUN")

python3 - "$GET" "$BATCH" "$PUT" "$RGET" "$RSET" "$RECORDS" "$SIZE" "$RSS_KB" "$REDIS_RSS_KB" "$BATCH4" "$HEALTH" "$RMGET" "$RMGET4" "$PACED" <<'PY'
import csv, io, json, sys
get, batch, put = (json.loads(a) for a in sys.argv[1:4])
batch4, health = json.loads(sys.argv[10]), json.loads(sys.argv[11])
paced = json.loads(sys.argv[14])
def redis(line):
    row = next(csv.reader(io.StringIO(line)))
    return {"rps": float(row[1]), "p50": float(row[4]), "p99": float(row[6])}
rget, rset = redis(sys.argv[4]), redis(sys.argv[5])
rmget, rmget4 = redis(sys.argv[12]), redis(sys.argv[13])
records, size, rss, redis_rss = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
print()
print(f"online store vs Redis: {records:,} records of 50 features ({size} bytes stored), 50 concurrent requests, client on the same machine")
print(f"{'operation':<42}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs Redis':>10}  target")
def line(name, rps, p50, p99, ratio="", target=""):
    print(f"{name:<42}{rps:>10,.0f}{p50:>9.3f}{p99:>9.3f}{ratio:>10}  {target}")
line("redis GET", rget["rps"], rget["p50"], rget["p99"])
line("redis SET (AOF everysec)", rset["rps"], rset["p50"], rset["p99"])
line("redis MGET (100 keys)", rmget["rps"], rmget["p50"], rmget["p99"])
line("redis MGET (100 keys), 4 in flight", rmget4["rps"], rmget4["p50"], rmget4["p99"])
g, b, p = get["latency_ms"], batch["latency_ms"], put["latency_ms"]
rg = get["requests_per_second"] / rget["rps"]
line("quiver GetRecord", get["requests_per_second"], g["p50"], g["p99"], f"{rg:.2f}x",
     f">= 0.5x and p99 <= 1 ms: {'met' if rg >= 0.5 and g['p99'] <= 1 else 'NOT met'}")
q = paced["latency_ms"]
line("quiver GetRecord offered at 0.5x GET's rate", paced["requests_per_second"], q["p50"], q["p99"],
     f"{paced['requests_per_second'] / rget['rps']:.2f}x",
     f"p99 <= 1 ms (open loop): {'met' if q['p99'] <= 1 else 'NOT met'}")
line("quiver BatchGetRecord (100)", batch["requests_per_second"], b["p50"], b["p99"],
     f"{batch['requests_per_second'] / rmget['rps']:.2f}x",
     f"p99 <= 5 ms: {'met' if b['p99'] <= 5 else 'NOT met'}")
b4 = batch4["latency_ms"]
line("quiver BatchGetRecord (100), 4 in flight", batch4["requests_per_second"], b4["p50"], b4["p99"],
     f"{batch4['requests_per_second'] / rmget4['rps']:.2f}x",
     f"p99 <= 5 ms: {'met' if b4['p99'] <= 5 else 'NOT met'}")
rp = put["requests_per_second"] / rset["rps"]
line("quiver PutRecord (WAL, periodic)", put["requests_per_second"], p["p50"], p["p99"], f"{rp:.2f}x",
     f">= 0.5x: {'met' if rp >= 0.5 else 'NOT met'}")
h = health["latency_ms"]
rh = health["requests_per_second"] / rget["rps"]
line("gRPC health check (RPC floor)", health["requests_per_second"], h["p50"], h["p99"], f"{rh:.2f}x",
     "no storage work: the most any RPC can do here")
errors = get["errors"] + paced["errors"] + batch["errors"] + batch4["errors"] + put["errors"] + health["errors"]
print(f"quiver errors: {errors}; server RSS after loading {records:,} records: {rss/1024:.0f} MiB (redis: {redis_rss/1024:.0f} MiB)")
PY
