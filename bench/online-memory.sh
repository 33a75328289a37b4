#!/usr/bin/env bash
# Server memory: RSS with RECORDS records loaded, then over a mixed read/write soak.
#
#   bash bench/online-memory.sh [RECORDS] [SOAK_SECONDS]      (defaults 1,000,000 and 600)
#
# Starts Quiver (release build, fresh data dir, --wal-sync periodic), loads RECORDS records of 50
# features with quiver-bench, prints the server's RSS, then runs quiver-bench mixed (90% GetRecord,
# 10% PutRecord, zipfian keys, 50 concurrent requests) for SOAK_SECONDS while sampling RSS every
# 10 s. Prints the samples and compares the mean RSS of the soak's second minute with that of its
# last minute: steady memory shows no growth between them (the first minute is warm-up: block
# cache and memtables filling).
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${1:-1000000}"
SOAK="${2:-600}"
source deploy/build-env.sh
cargo build --release --workspace --bins -q
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d /tmp/quiver-memory.XXXXXX)"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

RUST_LOG=warn "$BIN/quiver-server" --data-dir "$WORK/quiver" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --flight-sql-addr 127.0.0.1:0 \
  --addr-file "$WORK/addrs.json" --wal-sync periodic &
QUIVER_PID=$!
for _ in $(seq 600); do [ -s "$WORK/addrs.json" ] && break; sleep 0.1; done
QUIVER="http://$(python3 -c "import json;print(json.load(open('$WORK/addrs.json'))['grpc'])")"
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$QUIVER_PID/status"; }
qb() { "$BIN/quiver-bench" --endpoint "$QUIVER" --records "$RECORDS" --features 50 --concurrency 50 --json "$@"; }

echo "loading $RECORDS records"
LOAD=$(qb get --requests 1)
LOAD_SECONDS=$(echo "$LOAD" | python3 -c "import json,sys; print(round(json.load(sys.stdin)['load']['seconds']))")
echo "loaded in ${LOAD_SECONDS}s; server RSS $(rss_mib) MiB; data dir $(du -sm "$WORK/quiver" | cut -f1) MiB"

echo "mixed soak for ${SOAK}s (90% reads, zipfian keys), RSS every 10 s"
qb mixed --skip-load --distribution zipfian --duration "$SOAK" >"$WORK/soak.json" &
BENCH_PID=$!
: >"$WORK/rss.txt"
elapsed=0
while kill -0 "$BENCH_PID" 2>/dev/null; do
  sleep 10
  elapsed=$((elapsed + 10))
  kill -0 "$BENCH_PID" 2>/dev/null || break
  echo "$elapsed $(rss_mib)" | tee -a "$WORK/rss.txt"
done
wait "$BENCH_PID"
python3 - "$WORK/rss.txt" "$WORK/soak.json" "$RECORDS" <<'PY'
import json, sys
samples = [tuple(map(int, line.split())) for line in open(sys.argv[1]) if line.strip()]
soak = json.load(open(sys.argv[2]))
records = int(sys.argv[3])
def mean(rows): return sum(r for _, r in rows) / len(rows) if rows else float("nan")
end = samples[-1][0] if samples else 0
second_minute = [s for s in samples if 60 < s[0] <= 120]
last_minute = [s for s in samples if s[0] > end - 60]
lat = soak["latency_ms"]
print()
print(f"{records:,} records; soak {soak['seconds']:.0f}s: {soak['requests_per_second']:,.0f} req/s, p99 {lat['p99']:.3f} ms, errors {soak['errors']}")
print(f"RSS min {min(r for _, r in samples)} MiB, max {max(r for _, r in samples)} MiB")
a, b = mean(second_minute), mean(last_minute)
print(f"mean RSS, second minute: {a:.0f} MiB; last minute: {b:.0f} MiB; growth {b - a:+.0f} MiB ({(b - a) / a * 100:+.1f}%)")
PY
