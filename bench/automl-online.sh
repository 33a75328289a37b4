#!/usr/bin/env bash
# Online prediction end to end: AutoML's Predict of one record (the record read from the online
# store and the model applied, in one gRPC call) against GetRecord of the same records, at the
# same offered rate, on this machine.
#
#   bash bench/automl-online.sh [RECORDS] [BUDGET] [RATE] [SECONDS]   (defaults 20,000, 60s, 1,000 and 20)
#
# Starts a release server on a fresh data dir; writes RECORDS records of 50 numeric features
# (random, the label a rule over ten of them and a product of two) into a feature group with
# `quiver ingest`; builds a model with `quiver automl create --budget BUDGET` (AutoML's own
# choice: bagged fold models of the candidates its ensemble keeps); then runs quiver-bench
# `get` and `predict` for SECONDS each, offering RATE requests a second (an open loop, as
# inference traffic arrives), uniform keys. Prints both latency distributions and the target:
# Predict's p99 at most GetRecord's p99 + 1 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${1:-20000}"
BUDGET="${2:-60s}"
RATE="${3:-1000}"
SECONDS_RUN="${4:-20}"
source deploy/build-env.sh
cargo build --release --workspace --bins -q
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d /tmp/quiver-automl-online.XXXXXX)"
trap 'kill $(cat "$WORK/server.pid" 2>/dev/null) 2>/dev/null || true; sleep 1; rm -rf "$WORK"' EXIT

"$BIN/quiver-server" --data-dir "$WORK/data" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
  --flight-sql-addr 127.0.0.1:0 --addr-file "$WORK/addrs.json" >"$WORK/server.log" 2>&1 &
echo $! >"$WORK/server.pid"
for _ in $(seq 100); do [ -s "$WORK/addrs.json" ] && break; sleep 0.1; done
GRPC=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['grpc'])" "$WORK/addrs.json")
export QUIVER_ENDPOINT="http://$GRPC"

python3 - "$RECORDS" "$WORK/records.csv" <<'EOF'
import csv, random, sys
rows, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(7)
with open(path, "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["id", "ts"] + [f"f{i}" for i in range(48)] + ["label"])
    for r in range(rows):
        x = [rng.uniform(-0.5, 0.5) for _ in range(48)]
        s = sum(x[i] * (i + 1) for i in range(10)) + x[10] * x[11] * 8
        out.writerow([f"r{r}", 1700000000 + r] + [f"{v:.6f}" for v in x] + [int(s > 0)])
EOF
"$BIN/quiver" feature-group create bench_online --from "$WORK/records.csv" --record-id id --event-time ts >/dev/null
"$BIN/quiver" ingest bench_online "$WORK/records.csv" --no-progress
"$BIN/quiver" automl create bench-online-model --group bench_online --target label --budget "$BUDGET"
"$BIN/quiver" automl predict bench-online-model --group bench_online --id r0 --id r1

SERVER_PID=$(cat "$WORK/server.pid")
run() {
  "$BIN/quiver-bench" "$@" --group bench_online --records "$RECORDS" --skip-load \
    --rate "$RATE" --duration "$SECONDS_RUN" --concurrency 50 --server-pid "$SERVER_PID" --json
}
echo "GetRecord, ${RATE}/s for ${SECONDS_RUN}s"
GET=$(run get)
echo "$GET"
echo "Predict, ${RATE}/s for ${SECONDS_RUN}s"
PREDICT=$(run predict --model bench-online-model)
echo "$PREDICT"
python3 - "$GET" "$PREDICT" <<'EOF'
import json, sys
get, predict = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{'':10} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'errors':>7} {'server CPU us/req':>18}")
for name, r in (("GetRecord", get), ("Predict", predict)):
    l = r["latency_ms"]
    cpu = r["cpu_us_per_request"]["server"]
    cpu = f"{cpu:.0f}" if cpu is not None else "-"
    print(f"{name:10} {l['p50']:>8.3f} {l['p99']:>8.3f} {l['p999']:>9.3f} {r['errors']:>7} {cpu:>18}")
    if r["errors"]:
        print(f"  first error: {r['first_error']}")
added = predict["latency_ms"]["p99"] - get["latency_ms"]["p99"]
verdict = "met" if added <= 1.0 and not predict["errors"] else "not met"
print(f"Predict p99 - GetRecord p99 = {added:.3f} ms (target: at most 1 ms): {verdict}")
EOF
