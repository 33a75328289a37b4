#!/usr/bin/env bash
# Point-in-time training datasets: Quiver's CreateDataset against DuckDB's ASOF JOIN over the
# same Parquet files, in one run on this machine.
#
#   bash bench/dataset-vs-duckdb.sh [BASE_ROWS] [GROUP_ROWS] [STAGED_ROWS]
#                                  (defaults 1,000,000, 10,000,000 and 1% of GROUP_ROWS)
#
# Starts a release quiver-server on a fresh data dir, creates two feature groups with offline
# stores (`a`: 3 Fractional features, `b`: 2), and generates GROUP_ROWS rows of history for each
# straight into their offline stores (pyarrow, hour-partitioned as the flusher writes them:
# identifiers 0..GROUP_ROWS/10, event times spread over 30 days, no duplicates or deletes), and a
# base table of BASE_ROWS (identifier, time) rows. STAGED_ROWS more rows per group are written
# through the server (`quiver ingest`) and stay staged (acknowledged, not yet in a file: the
# server flushes once an hour here), so Quiver's builds read them from staging; DuckDB reads the
# same rows from a Parquet copy. Then:
#  - Quiver: `quiver dataset create --point-in-time --most-recent 1` joining both groups;
#  - DuckDB: `base ASOF LEFT JOIN a ASOF LEFT JOIN b` over the same files, written to Parquet;
# each ROUNDS times (default 3), alternating, and prints every run's time, each engine's median
# rows per second and highest peak memory (the server's peak RSS over its RSS before the build;
# DuckDB's process peak RSS), with the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_ROWS="${1:-1000000}"
GROUP_ROWS="${2:-10000000}"
STAGED_ROWS="${3:-$((GROUP_ROWS / 100))}"
source deploy/build-env.sh
VENV="${QUIVER_TEST_VENV:-$HOME/.cache/quiver/venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import pyarrow, duckdb" 2>/dev/null || \
  "$VENV/bin/pip" install -q --disable-pip-version-check 'pyarrow>=15' 'duckdb>=1.1'
PY="$VENV/bin/python"
cargo build --release --workspace --bins -q
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d /tmp/quiver-dataset-bench.XXXXXX)"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

RUST_LOG=warn "$BIN/quiver-server" --data-dir "$WORK/quiver" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
  --flight-sql-addr 127.0.0.1:0 --addr-file "$WORK/addrs.json" --wal-sync periodic \
  --offline-flush-interval-ms 3600000 --query-memory-mb "${QUERY_MEMORY_MB:-4096}" &
SERVER=$!
for _ in $(seq 600); do [ -s "$WORK/addrs.json" ] && break; sleep 0.1; done
export QUIVER_ENDPOINT="http://$(python3 -c "import json;print(json.load(open('$WORK/addrs.json'))['grpc'])")"
q() { "$BIN/quiver" "$@"; }

spec() { # name, features...
  local name="$1"; shift
  python3 - "$name" "$@" <<'PY'
import json, sys
name, features = sys.argv[1], sys.argv[2:]
defs = [{"FeatureName": "id", "FeatureType": "Integral"}, {"FeatureName": "ts", "FeatureType": "Fractional"}]
defs += [{"FeatureName": f, "FeatureType": "Fractional"} for f in features]
print(json.dumps({"FeatureGroupName": name, "RecordIdentifierFeatureName": "id",
                  "EventTimeFeatureName": "ts", "FeatureDefinitions": defs,
                  "OfflineStoreConfig": {"S3StorageConfig": {"S3Uri": ""}}}))
PY
}
spec a a1 a2 a3 > "$WORK/a.json"
spec b b1 b2 > "$WORK/b.json"
q feature-group create --spec "$WORK/a.json" >/dev/null
q feature-group create --spec "$WORK/b.json" >/dev/null
DATA_A=$(q feature-group describe a --output json | python3 -c "import json,sys; print(json.load(sys.stdin)['OfflineStore'])")
DATA_B=$(q feature-group describe b --output json | python3 -c "import json,sys; print(json.load(sys.stdin)['OfflineStore'])")

echo "generating $GROUP_ROWS rows per group and $BASE_ROWS base rows"
"$PY" - "$GROUP_ROWS" "$BASE_ROWS" "${DATA_A#file://}" "${DATA_B#file://}" "$WORK/base.parquet" "$STAGED_ROWS" "$WORK" <<'PY'
import sys
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

group_rows, base_rows = int(sys.argv[1]), int(sys.argv[2])
dir_a, dir_b, base_path = sys.argv[3], sys.argv[4], sys.argv[5]
staged_rows, work = int(sys.argv[6]), sys.argv[7]
ids = max(1, group_rows // 10)
start = 1_764_547_200.0  # 2025-12-01T00:00:00Z
span = 30 * 86_400.0
rng = np.random.default_rng(7)
ts_type = pa.timestamp("ms", tz="UTC")

def history(path, features):
    idv = rng.integers(0, ids, group_rows, dtype=np.int64)
    ts = np.round(start + rng.random(group_rows) * span, 3)
    cols = {"id": idv, "ts": ts}
    for f in features:
        cols[f] = rng.random(group_rows)
    millis = (ts * 1000).astype(np.int64)
    write = pa.array(np.full(group_rows, int((start + span) * 1000) + 60_000), type=pa.int64()).cast(ts_type)
    cols["write_time"] = write
    cols["api_invocation_time"] = pa.array(millis + 1000, type=pa.int64()).cast(ts_type)
    cols["is_deleted"] = np.zeros(group_rows, dtype=bool)
    hours = millis // 3_600_000
    days = hours // 24
    dt = np.datetime64("1970-01-01") + days.astype("timedelta64[D]")
    years = dt.astype("datetime64[Y]").astype(int) + 1970
    months = dt.astype("datetime64[M]").astype(int) % 12 + 1
    mday = (dt - dt.astype("datetime64[M]")).astype(int) + 1
    cols["year"] = np.char.zfill(years.astype(str), 4)
    cols["month"] = np.char.zfill(months.astype(str), 2)
    cols["day"] = np.char.zfill(mday.astype(str), 2)
    cols["hour"] = np.char.zfill((hours % 24).astype(str), 2)
    # In event-time order, so each hour's file is written at once, with row groups as large as
    # the flusher's (write_to_dataset would otherwise cut a row group per input slice: ~45 rows).
    table = pa.table(cols).sort_by("ts")
    pq.write_to_dataset(table, path, partition_cols=["year", "month", "day", "hour"],
                        basename_template="20251231T000000Z_{i}.parquet", compression="snappy")

history(dir_a, ["a1", "a2", "a3"])
history(dir_b, ["b1", "b2"])

# Rows to write through the server (staged there), as CSV for `quiver ingest` and as Parquet
# for DuckDB.
import pyarrow.csv as pcsv
for name, features in (("a", ["a1", "a2", "a3"]), ("b", ["b1", "b2"])):
    cols = {"id": rng.integers(0, ids, staged_rows, dtype=np.int64),
            "ts": np.round(start + rng.random(staged_rows) * span, 3)}
    for f in features:
        cols[f] = np.round(rng.random(staged_rows), 9)
    staged = pa.table(cols)
    pcsv.write_csv(staged, f"{work}/staged-{name}.csv")
    pq.write_table(staged, f"{work}/staged-{name}.parquet")
base = pa.table({
    "id": rng.integers(0, ids, base_rows, dtype=np.int64),
    "ts": np.round(start + rng.random(base_rows) * span, 3),
    "label": rng.integers(0, 2, base_rows, dtype=np.int64),
})
pq.write_table(base, base_path)
PY

echo "writing $STAGED_ROWS rows per group through the server (staged, not yet in files)"
q ingest a "$WORK/staged-a.csv" --no-progress >/dev/null
q ingest b "$WORK/staged-b.csv" --no-progress >/dev/null

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
# The generated files are flushed to disk (writeback would otherwise run during the first
# timed build) and read once, to warm the page cache for both engines alike.
sync
find "$WORK/quiver/offline-store" "$WORK/base.parquet" -name '*.parquet' -exec cat {} + >/dev/null

cat > "$WORK/duck.py" <<PY
import duckdb, time
con = duckdb.connect()
con.execute("SET threads TO $(nproc)")
for name, path in (("a", "${DATA_A#file://}"), ("b", "${DATA_B#file://}")):
    # The files, and the rows Quiver holds staged.
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}/**/*.parquet', hive_partitioning = true) "
                f"UNION ALL BY NAME SELECT * FROM read_parquet('$WORK/staged-{name}.parquet')")
con.execute("CREATE VIEW base AS SELECT * FROM read_parquet('$WORK/base.parquet')")
t0 = time.time()
con.execute("""COPY (
  SELECT base.*, a.a1, a.a2, a.a3, b.b1, b.b2
  FROM base
  ASOF LEFT JOIN a ON base.id = a.id AND base.ts >= a.ts
  ASOF LEFT JOIN b ON base.id = b.id AND base.ts >= b.ts
) TO '$WORK/duck-out.parquet' (FORMAT parquet)""")
print(time.time() - t0)
PY

# Each engine builds ROUNDS times, alternating (this machine's run-to-run noise reaches 2x);
# the report takes each engine's median time and its highest peak.
ROUNDS="${ROUNDS:-3}"
: > "$WORK/quiver-runs"; : > "$WORK/duck-runs"
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS: quiver dataset create (point-in-time, most recent 1, two groups)"
  rm -rf "$WORK/quiver-out"
  BEFORE=$(rss_kb "$SERVER")
  # VmHWM is the peak since the process started; reset it so it covers the build only.
  echo 5 > "/proc/$SERVER/clear_refs" 2>/dev/null || true
  T0=$(date +%s.%N)
  q --output json dataset create --base-file "$WORK/base.parquet" --record-id id --event-time ts \
    --group a --group b --point-in-time --most-recent 1 --out "$WORK/quiver-out" > "$WORK/manifest.json"
  T1=$(date +%s.%N)
  echo "$T0 $T1 $BEFORE $(hwm_kb "$SERVER")" >> "$WORK/quiver-runs"
  echo "round $round/$ROUNDS: duckdb ASOF LEFT JOIN over the same files"
  /usr/bin/time -f "%M" -o "$WORK/duck-rss" "$PY" "$WORK/duck.py" > "$WORK/duck-secs"
  echo "$(cat "$WORK/duck-secs") $(cat "$WORK/duck-rss")" >> "$WORK/duck-runs"
done

STILL_STAGED=$(q --output json sql "SELECT count(*) - count(write_time) AS n FROM a" | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['n'])")
echo "quiver sql: a sum over all hours, and over the last day (partition pruning)"
LAST_DAY=$(python3 -c "print(1764547200 + 29 * 86400)")
# A sum, not count(*): counts are answered from the Parquet footers without reading rows.
S0=$(date +%s.%N); q sql "SELECT sum(a1) FROM a" >/dev/null 2>&1; S1=$(date +%s.%N)
q sql "SELECT sum(a1) FROM a WHERE ts >= $LAST_DAY" >/dev/null 2>&1; S2=$(date +%s.%N)

# The two results must agree (generated data has no duplicates or deletes, so the SageMaker
# options and a plain ASOF join mean the same): rows of each missing from the other.
DIFF=$("$PY" - <<PY
import duckdb
con = duckdb.connect()
q = "SELECT id, ts, label, a1, a2, a3, b1, b2 FROM read_parquet('{}')"
quiver, duck = q.format("$WORK/quiver-out/*.parquet"), q.format("$WORK/duck-out.parquet")
a = con.execute(f"SELECT count(*) FROM ({quiver} EXCEPT ALL {duck})").fetchone()[0]
b = con.execute(f"SELECT count(*) FROM ({duck} EXCEPT ALL {quiver})").fetchone()[0]
print(a + b)
PY
)

python3 - "$BASE_ROWS" "$GROUP_ROWS" "$WORK/quiver-runs" "$WORK/duck-runs" "$WORK/manifest.json" \
  "$S0" "$S1" "$S2" "$DIFF" "$STAGED_ROWS" "$STILL_STAGED" <<'PY'
import json, statistics, sys
base, group = int(sys.argv[1]), int(sys.argv[2])
quiver = [[float(x) for x in line.split()] for line in open(sys.argv[3])]
duck = [[float(x) for x in line.split()] for line in open(sys.argv[4])]
manifest = json.load(open(sys.argv[5]))
s0, s1, s2 = (float(x) for x in sys.argv[6:9])
diff = int(sys.argv[9])
staged, still_staged = int(sys.argv[10]), int(sys.argv[11])
q_runs = [t1 - t0 for t0, t1, _, _ in quiver]
q_mems = [max(peak - before, 0) / 1024 for _, _, before, peak in quiver]
d_runs = [secs for secs, _ in duck]
d_mems = [rss / 1024 for _, rss in duck]
q_secs, d_secs = statistics.median(q_runs), statistics.median(d_runs)
q_mem, d_mem = max(q_mems), max(d_mems)
print()
print(f"point-in-time dataset: {base:,} base rows joined with 2 groups of {group:,} rows in files "
      f"+ {staged:,} staged (this machine)")
print(f"{'engine':<26}{'runs (s)':>24}{'median s':>10}{'base rows/s':>13}{'peak MiB':>10}")
for name, runs, secs, mem in (("quiver CreateDataset", q_runs, q_secs, q_mem),
                              ("duckdb ASOF LEFT JOIN", d_runs, d_secs, d_mem)):
    listed = " ".join(f"{r:.2f}" for r in runs)
    print(f"{name:<26}{listed:>24}{secs:>10.2f}{base / secs:>13,.0f}{mem:>10,.0f}")
print(f"quiver/duckdb speed (medians): {d_secs / q_secs:.2f}x (target >= 1); "
      f"memory (highest peaks): {q_mem / d_mem:.2f}x (target <= 1)")
print(f"quiver rows written: {manifest['row_count']:,} (one per base row expected: {base:,}); "
      f"rows differing from duckdb's result: {diff}")
print("quiver memory is the server's peak RSS during the build over its RSS before; duckdb's is its process peak")
print(f"rows of group a still staged (not in a file) after the builds: {still_staged:,} of {staged:,}")
print(f"partition pruning: sum(a1) over all 30 days of a {s1 - s0:.2f}s; over its last day "
      f"(ts >= ..., 1/30 of the hour partitions read) {s2 - s1:.2f}s")
PY
