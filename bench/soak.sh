#!/usr/bin/env bash
# A soak: reads, writes, bulk ingest and queries at 70% of measured capacity for a long time,
# watching throughput, p99 and the server's memory for a trend.
#
#   bash bench/soak.sh [SECONDS] [RECORDS]      (defaults 3600 and 1,000,000)
#
# Starts Quiver (release build, fresh data dir, the default configuration: WAL fsynced per
# write, offline store on local disk, flushed every 60 s here), loads RECORDS records of 20
# features (quiver-bench), measures the capacity of a mixed load (90% GetRecord, 10%
# PutRecord, zipfian keys, 50 in flight, closed loop, 20 s), then for SECONDS offers the same
# mix at 70% of that rate (an open loop, in 60 s windows, each printing its throughput and
# p99) while, every 60 s, `quiver ingest` writes 10,000 CSV rows into a second group and
# `quiver sql` runs two aggregates over its offline history; the server's RSS is sampled after
# each window. Prints each window, then the first and last tenths side by side and the
# least-squares trend of RSS and p99 per hour, against the issue's target (no growth trend).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-3600}"
RECORDS="${2:-1000000}"
WINDOW=60
source deploy/build-env.sh
cargo build --release --workspace --bins -q
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d /tmp/quiver-soak.XXXXXX)"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

RUST_LOG=warn "$BIN/quiver-server" --data-dir "$WORK/quiver" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
  --flight-sql-addr 127.0.0.1:0 --addr-file "$WORK/addrs.json" --offline-flush-interval-ms 60000 &
SERVER=$!
for _ in $(seq 600); do [ -s "$WORK/addrs.json" ] && break; sleep 0.1; done
GRPC="http://$(python3 -c "import json;print(json.load(open('$WORK/addrs.json'))['grpc'])")"
qb() { "$BIN/quiver-bench" --endpoint "$GRPC" --records "$RECORDS" --features 20 --json "$@"; }
quiver() { "$BIN/quiver" --endpoint "$GRPC" "$@"; }

echo "loading $RECORDS records"
qb mixed --requests 1 >/dev/null
CAPACITY=$(qb mixed --skip-load --distribution zipfian --concurrency 50 --duration 20 |
  python3 -c "import json,sys; print(int(json.load(sys.stdin)['requests_per_second']))")
RATE=$((CAPACITY * 7 / 10))
echo "capacity $CAPACITY req/s (mixed, closed loop); soaking at $RATE req/s for ${DURATION}s"

# The bulk-ingest group, with an offline store, and its rows (new event times each minute, so
# each ingest applies).
rows() {
  python3 - "$WORK/ingest.csv" "$1" <<'PY'
import sys
path, minute = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    f.write("id,ts,amount,n\n")
    for i in range(10000):
        f.write(f"u{i},{1_700_000_000 + minute * 60 + i / 10000:.4f},{(i * 7919) % 1000 / 10},{minute}\n")
PY
}
rows 0
quiver feature-group create soak_ingest --from "$WORK/ingest.csv" --record-id id --event-time ts \
  --offline-store default >/dev/null
side_load() {
  local minute=0
  while true; do
    rows "$minute"
    local started
    started=$(date +%s.%N)
    quiver ingest soak_ingest "$WORK/ingest.csv" --no-progress >/dev/null
    local ingest_s
    ingest_s=$(python3 -c "import time; print(round(time.time() - $started, 3))")
    started=$(date +%s.%N)
    quiver sql "SELECT count(*), avg(amount) FROM soak_ingest" >/dev/null 2>&1
    quiver sql "SELECT n, count(*), max(amount) FROM soak_ingest GROUP BY n ORDER BY n DESC LIMIT 5" >/dev/null 2>&1
    echo "$minute $ingest_s $(python3 -c "import time; print(round(time.time() - $started, 3))")" >>"$WORK/side.txt"
    minute=$((minute + 1))
    sleep 45
  done
}
side_load &

: >"$WORK/windows.txt"
WINDOWS=$((DURATION / WINDOW))
for w in $(seq 1 "$WINDOWS"); do
  qb mixed --skip-load --distribution zipfian --concurrency 50 --rate "$RATE" --duration "$WINDOW" >"$WORK/w.json"
  RSS=$(ps -o rss= -p "$SERVER" | tr -d ' ')
  python3 - "$WORK/w.json" "$w" "$RSS" >>"$WORK/windows.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(sys.argv[2], round(r["requests_per_second"]), r["latency_ms"]["p99"], r["errors"], int(sys.argv[3]) // 1024)
PY
  tail -n 1 "$WORK/windows.txt" | awk '{printf "window %s: %s req/s, p99 %s ms, %s errors, RSS %s MiB\n", $1, $2, $3, $4, $5}'
done

python3 - "$WORK/windows.txt" "$WORK/side.txt" "$RATE" "$WINDOW" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
side = [l.split() for l in open(sys.argv[2]) if l.strip()] if len(sys.argv) > 2 else []
rate, window = int(sys.argv[3]), int(sys.argv[4])
t = [int(r[0]) * window / 3600 for r in rows]  # hours
rps = [float(r[1]) for r in rows]; p99 = [float(r[2]) for r in rows]
errors = sum(int(r[3]) for r in rows); rss = [float(r[4]) for r in rows]
def slope(xs, ys):
    n = len(xs); mx = sum(xs) / n; my = sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs) or 1
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den
tenth = max(1, len(rows) // 10)
mean = lambda v: sum(v) / len(v)
print(f"\n{len(rows)} windows of {window}s at {rate} req/s offered; {errors} errors")
print(f"{'':12}{'req/s':>10}{'p99 ms':>10}{'RSS MiB':>10}")
print(f"{'first tenth':12}{mean(rps[:tenth]):>10.0f}{mean(p99[:tenth]):>10.3f}{mean(rss[:tenth]):>10.0f}")
print(f"{'last tenth':12}{mean(rps[-tenth:]):>10.0f}{mean(p99[-tenth:]):>10.3f}{mean(rss[-tenth:]):>10.0f}")
rss_trend = slope(t, rss) / mean(rss) * 100
p99_trend = slope(t, p99) / mean(p99) * 100
rps_short = min(rps) / rate
print(f"trend per hour: RSS {rss_trend:+.1f}%, p99 {p99_trend:+.1f}%; lowest window {rps_short:.3f} of the offered rate")
if side:
    print(f"ingest of 10,000 rows: {len(side)} runs, {mean([float(s[1]) for s in side]):.2f} s mean; "
          f"queries {mean([float(s[2]) for s in side]):.3f} s mean, {max(float(s[2]) for s in side):.3f} s max")
stable = abs(rss_trend) < 10 and p99_trend < 25 and rps_short > 0.97 and errors == 0
print(f"stable (RSS trend under 10%/h, p99 trend under 25%/h, every window at >= 97% of the rate, no errors): {'yes' if stable else 'NO'}")
PY
