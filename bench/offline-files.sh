#!/usr/bin/env bash
# Offline files under steady live traffic: how many Parquet files each hour partition gets on
# the server's default flush policy, against the 5 s interval it replaced.
#
#   bash bench/offline-files.sh [RATE] [SECONDS]     (defaults 10,000 writes/s for 1,800 s)
#
# Builds the release binaries, starts quiver-server on its defaults (a flush when the oldest
# staged row has waited 5 minutes, or when 128 MiB wait), creates a group with an offline store
# (10 features, as quiver-bench writes them), and runs `quiver-bench put` offering RATE PutRecord
# per second (an open loop) for SECONDS, with wall-clock event times (live traffic: each row
# falls in the current hour partition). Then stops the server (its shutdown flush writes what is
# staged) and prints per hour partition the files and their sizes, the whole run's files per
# hour, and the same for the 5 s interval (one file per partition every 5 s: 720 an hour).
# While the load runs it also times `SELECT count(*)` through the server every 30 s (the files
# are listed afresh and the staged rows read on every query): the listing cost as files
# accumulate. Last, the listing cost at the old policy's file counts: the same 19,804 rows as
# LISTING_FILES small files (default 5,661) and as 30 large ones, each queried 5 times.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${1:-10000}"
SECONDS_TOTAL="${2:-1800}"
source deploy/build-env.sh
cargo build --release --workspace --bins -q
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d /tmp/quiver-bench-files.XXXXXX)"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

RUST_LOG=warn "$BIN/quiver-server" --data-dir "$WORK/data" --grpc-addr 127.0.0.1:0 \
  --http-addr 127.0.0.1:0 --flight-sql-addr 127.0.0.1:0 --addr-file "$WORK/addrs.json" &
SERVER_PID=$!
for _ in $(seq 600); do [ -s "$WORK/addrs.json" ] && break; sleep 0.1; done
GRPC=$(python3 -c "import json;print(json.load(open('$WORK/addrs.json'))['grpc'])")
export QUIVER_ENDPOINT="http://$GRPC"

# The group quiver-bench writes (id, ts, then Integral / Fractional / String features), with an
# offline store.
python3 - > "$WORK/group.json" <<'PY'
import json
defs = [{"FeatureName": "id", "FeatureType": "String"}, {"FeatureName": "ts", "FeatureType": "Fractional"}]
kinds = {0: "Integral", 1: "Fractional", 2: "String"}
defs += [{"FeatureName": f"f{i}", "FeatureType": kinds[i % 3]} for i in range(2, 10)]
print(json.dumps({"FeatureGroupName": "live", "RecordIdentifierFeatureName": "id",
                  "EventTimeFeatureName": "ts", "FeatureDefinitions": defs,
                  "OnlineStoreConfig": {"EnableOnlineStore": True},
                  "OfflineStoreConfig": {"S3StorageConfig": {"S3Uri": ""}}}))
PY
"$BIN/quiver" feature-group create --spec "$WORK/group.json" >/dev/null

# The listing cost while files accumulate: a count through the server every 30 s.
(
  while sleep 30; do
    t0=$(date +%s.%N)
    n=$("$BIN/quiver" --output json sql 'SELECT count(*) AS n FROM live' 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['n'])" || echo "?")
    t1=$(date +%s.%N)
    files=$(find "$WORK/data/offline-store" -name '*.parquet' | wc -l)
    echo "$t1 $files $n $(python3 -c "print(round(($t1 - $t0) * 1000))")" >> "$WORK/queries"
  done
) &
QUERIES=$!

echo "offering $RATE PutRecord/s for $SECONDS_TOTAL s (wall-clock event times)"
"$BIN/quiver-bench" put --group live --skip-load --features 10 --records 1000000 \
  --rate "$RATE" --duration "$SECONDS_TOTAL" --concurrency 64 --wall-clock-event-times --json > "$WORK/bench.json"
kill "$QUERIES" 2>/dev/null || true

# The listing cost at the file counts the 5 s interval made: LISTING_FILES files (default 5,661,
# what 19,804 rows over 30 days of event times became at a 500 ms interval) written straight into
# a group's layout, against the same rows in 30 files (one per day); a query lists them afresh
# each time. Median of 5 runs of each statement.
LISTING_FILES="${LISTING_FILES:-5661}"
for name in small large; do
  sed "s/\"live\"/\"$name\"/" "$WORK/group.json" > "$WORK/$name.json"
  "$BIN/quiver" feature-group create --spec "$WORK/$name.json" >/dev/null
done
dir_of() { "$BIN/quiver" feature-group describe "$1" --output json | python3 -c "import json,sys; print(json.load(sys.stdin)['OfflineStore'][len('file://'):])"; }
"${QUIVER_TEST_VENV:-$HOME/.cache/quiver/venv}/bin/python" - "$(dir_of small)" "$(dir_of large)" "$LISTING_FILES" <<'PY'
import os, sys
import pyarrow as pa, pyarrow.parquet as pq
small, large, files = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = 19_804
start = 1_764_547_200  # 2025-12-01T00:00:00Z
ts = [start + i * (30 * 86_400 / rows) for i in range(rows)]
def table(idx):
    n = len(idx)
    stamp = pa.array([1_767_225_600_000] * n, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    cols = {"id": [f"r{i}" for i in idx], "ts": [ts[i] for i in idx]}
    for f in range(2, 10):
        kind = f % 3
        cols[f"f{f}"] = [i for i in idx] if kind == 0 else ([float(i) for i in idx] if kind == 1 else [f"s{i}" for i in idx])
    cols.update(write_time=stamp, api_invocation_time=stamp, is_deleted=[False] * n)
    return pa.table(cols)
def write(root, groups):
    for k, idx in enumerate(groups):
        t = ts[idx[0]]
        import time
        y, mo, d, h = time.gmtime(t)[:4]
        part = f"{root}/data/year={y:04}/month={mo:02}/day={d:02}/hour={h:02}"
        os.makedirs(part, exist_ok=True)
        pq.write_table(table(idx), f"{part}/20260101T000000Z_{k:012x}0000.parquet")
per = max(1, rows // files)
write(small, [list(range(i, min(i + per, rows))) for i in range(0, rows, per)][:files])
write(large, [list(range(i, min(i + rows // 30, rows))) for i in range(0, rows, rows // 30)])
PY
time_query() { # sql -> median ms of 5
  for _ in 1 2 3 4 5; do
    t0=$(date +%s.%N); "$BIN/quiver" sql "$1" >/dev/null 2>&1; t1=$(date +%s.%N)
    python3 -c "print(($t1 - $t0) * 1000)"
  done | sort -n | sed -n 3p
}
for name in small large; do
  files=$(find "$(dir_of $name)" -name '*.parquet' | wc -l)
  echo "$name $files $(time_query "SELECT count(*) FROM $name") $(time_query "SELECT sum(f3) FROM $name") $(time_query "SELECT sum(f3) FROM $name WHERE ts >= 1766966400")" >> "$WORK/listing"
done
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true

python3 - "$WORK/bench.json" "$WORK/data/offline-store" "$SECONDS_TOTAL" "$WORK/queries" "$WORK/listing" <<'PY'
import collections, json, os, sys
bench, root, seconds, queries = json.load(open(sys.argv[1])), sys.argv[2], float(sys.argv[3]), sys.argv[4]
parts = collections.defaultdict(list)
for dirpath, _, names in os.walk(root):
    if "/live-" not in dirpath:
        continue
    for name in names:
        if name.endswith(".parquet"):
            part = "/".join(p for p in dirpath.split("/") if "=" in p)
            parts[part].append(os.path.getsize(os.path.join(dirpath, name)))
files = sum(len(v) for v in parts.values())
size = sum(sum(v) for v in parts.values())
print()
print(f"offline files under live traffic: {bench['requests_per_second']:,.0f} PutRecord/s achieved "
      f"(offered {bench['rate']:,.0f}/s) for {bench['seconds']:,.0f} s, {bench['errors']} errors, "
      f"p99 {bench['latency_ms']['p99']} ms")
print(f"{'hour partition':<40}{'files':>7}{'MB':>9}{'mean MB/file':>14}")
for part in sorted(parts):
    sizes = parts[part]
    print(f"{part:<40}{len(sizes):>7}{sum(sizes) / 1e6:>9.1f}{sum(sizes) / len(sizes) / 1e6:>14.1f}")
per_hour = files / (seconds / 3600)
print(f"total: {files} files, {size / 1e6:.1f} MB; {per_hour:.1f} files per hour of load "
      f"(5 s interval: 720 per hour per partition written to)")
print(f"ratio, files per hour: {720 / max(per_hour, 1e-9):.0f}x fewer than the 5 s interval")
if os.path.exists(queries):
    print("SELECT count(*) through the server while loading (files listed afresh each time):")
    print(f"{'files':>7}{'rows':>12}{'ms':>8}")
    for line in open(queries):
        _, n, rows, ms = line.split()
        print(f"{n:>7}{rows:>12}{ms:>8}")
print("listing cost: the same 19,804 rows in many small files or a few large ones (median of 5, ms)")
print(f"{'group':<8}{'files':>7}{'count(*)':>10}{'sum(f3)':>9}{'last 2 days':>13}")
listing = {}
for line in open(sys.argv[5]):
    name, files, count, total, recent = line.split()
    listing[name] = float(total)
    print(f"{name:<8}{files:>7}{float(count):>10.0f}{float(total):>9.0f}{float(recent):>13.0f}")
print(f"ratio, sum(f3) over all files: small files take {listing['small'] / listing['large']:.1f}x the time of large ones")
PY
