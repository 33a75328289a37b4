#!/usr/bin/env bash
# GetRecord and PutRecord with TLS + authentication + encryption at rest on, against all off,
# in one run on this machine.
#
#   bash bench/security-overhead.sh [RECORDS] [SECONDS] [ROUNDS]   (defaults 200,000, 10 and 5)
#
# Starts two release servers on fresh data dirs (WAL periodic, as bench/online-vs-redis.sh):
# "off" (no TLS, no authentication, no encryption) and "on" (--auth, TLS with client
# certificates from a CA made here with openssl, --encrypt-at-rest under a local key). Loads
# RECORDS records of 50 features into each, then runs quiver-bench get and put at 50 concurrent
# requests for SECONDS each against: off; on with every request signed with the root key over
# TLS ("signed"); on with the root principal's client certificate over mutual TLS, unsigned
# ("mtls"). Runs alternate, ROUNDS rounds. Prints throughput, p99, the CPU time client and
# server used per request, the slowdown of each "on" against off, and the verdict against the
# 15% target, taken on the median of the rounds' slowdowns (the mean is printed too).
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${1:-200000}"
SECONDS_RUN="${2:-10}"
ROUNDS="${3:-5}"
source deploy/build-env.sh
cargo build --release --workspace --bins -q
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d /tmp/quiver-security-bench.XXXXXX)"
# The servers start inside command substitutions, so they are not this shell's jobs: their
# pids are kept in files.
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; sleep 1; rm -rf "$WORK"' EXIT

# A CA, a server certificate for localhost, and a client certificate for the root principal.
PKI="$WORK/pki"
mkdir -p "$PKI"
(
  cd "$PKI"
  ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -noenc"
  openssl req -x509 $ec -keyout ca.key -out ca.pem -days 1 -subj /CN=bench-ca 2>/dev/null
  for who in server root; do
    openssl req $ec -keyout $who.key -out $who.csr -subj "/CN=$( [ $who = server ] && echo localhost || echo root )" 2>/dev/null
    if [ $who = server ]; then ext="subjectAltName=DNS:localhost,IP:127.0.0.1"; else ext="extendedKeyUsage=clientAuth"; fi
    printf '%s\n' "$ext" >$who.ext
    openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $who.pem -days 1 -extfile $who.ext 2>/dev/null
  done
)

start() { # name, extra args...
  local name=$1; shift
  RUST_LOG=warn "$BIN/quiver-server" --data-dir "$WORK/$name" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    --flight-sql-addr 127.0.0.1:0 --addr-file "$WORK/$name.json" --wal-sync periodic "$@" \
    >"$WORK/$name.log" 2>&1 &
  echo $! >"$WORK/$name.pid"
  for _ in $(seq 600); do [ -s "$WORK/$name.json" ] && break; sleep 0.1; done
  python3 -c "import json;print(json.load(open('$WORK/$name.json'))['grpc'].rsplit(':',1)[1])"
}
OFF="http://127.0.0.1:$(start off)"
ON="https://localhost:$(start on --auth --encrypt-at-rest --tls-cert "$PKI/server.pem" \
  --tls-key "$PKI/server.key" --tls-client-ca "$PKI/ca.pem")"
CREDS="$WORK/on/root-credentials"

qb() { # mode (off, signed, mtls), args...
  local mode=$1; shift
  local server=off; [ "$mode" = off ] || server=on
  set -- --server-pid "$(cat "$WORK/$server.pid")" "$@"
  case $mode in
    off) QUIVER_SHARED_CREDENTIALS_FILE=/dev/null HOME="$WORK" "$BIN/quiver-bench" --endpoint "$OFF" \
           --records "$RECORDS" --features 50 --concurrency 50 --json "$@" ;;
    signed) QUIVER_SHARED_CREDENTIALS_FILE="$CREDS" QUIVER_CA_CERT="$PKI/ca.pem" HOME="$WORK" \
           "$BIN/quiver-bench" --endpoint "$ON" --records "$RECORDS" --features 50 --concurrency 50 --json "$@" ;;
    mtls) QUIVER_SHARED_CREDENTIALS_FILE=/dev/null QUIVER_CA_CERT="$PKI/ca.pem" \
           QUIVER_CLIENT_CERT="$PKI/root.pem" QUIVER_CLIENT_KEY="$PKI/root.key" HOME="$WORK" \
           "$BIN/quiver-bench" --endpoint "$ON" --records "$RECORDS" --features 50 --concurrency 50 --json "$@" ;;
  esac
}
# Waits (up to a minute) until both servers are idle: a run must not share the cores with the
# other server's flushes and compactions, left over from loading or an earlier put run.
ticks() { cat "$WORK"/off.pid "$WORK"/on.pid | while read -r pid; do sed 's/.*) //' "/proc/$pid/stat"; done |
  awk '{ t += $12 + $13 } END { print t }'; }
settle() {
  local before after
  for _ in $(seq 60); do
    before=$(ticks); sleep 1; after=$(ticks)
    [ $((after - before)) -le 3 ] && return
  done
  echo "warning: the servers did not go idle within 60 s" >&2
}
echo "loading $RECORDS records into each server"
qb off get --requests 1 >/dev/null
qb signed get --requests 1 >/dev/null
declare -A R
for round in $(seq "$ROUNDS"); do
  for op in get put; do
    echo "round $round: $op: off, signed, mtls, ${SECONDS_RUN}s each"
    for mode in off signed mtls; do
      settle
      R[$mode-$op-$round]=$(qb $mode "$op" --skip-load --duration "$SECONDS_RUN")
    done
  done
done

args=()
for round in $(seq "$ROUNDS"); do for op in get put; do for mode in off signed mtls; do
  args+=("$op" "$round" "$mode" "${R[$mode-$op-$round]}")
done; done; done
python3 - "${args[@]}" <<'PY'
import json, statistics, sys
a = sys.argv[1:]
runs = {}
for i in range(0, len(a), 4):
    op, rnd, mode, result = a[i], int(a[i + 1]), a[i + 2], json.loads(a[i + 3])
    if result["errors"]:
        sys.exit("errors in %s %s: %s" % (mode, op, result["first_error"]))
    runs[(op, rnd, mode)] = result
rounds = sorted({rnd for (_, rnd, _) in runs})
cpu = lambda r, side: r["cpu_us_per_request"][side]
print("%-4s %5s %-7s %9s %9s %9s %12s %12s" % ("op", "round", "mode", "req/s", "slowdown", "p99",
                                              "client CPU", "server CPU"))
for (op, rnd, mode), r in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2] != "off", kv[0][2])):
    off = runs[(op, rnd, "off")]["requests_per_second"]
    slow = "" if mode == "off" else "%8.1f%%" % (100 * (1 - r["requests_per_second"] / off))
    print("%-4s %5d %-7s %9.0f %9s %7.3fms %9.1f us %9.1f us" % (
        op, rnd, mode, r["requests_per_second"], slow, r["latency_ms"]["p99"],
        cpu(r, "client"), cpu(r, "server")))
print()
print("over %d rounds: mean throughput, and the median of the rounds' slowdowns (each round's"
      " runs are back to back, so the median pairs like with like and one disturbed run does not"
      " swing it); the verdict is the median's. CPU per request is the mean." % len(rounds))
for op in ("get", "put"):
    total = lambda mode: sum(runs[(op, rnd, mode)]["requests_per_second"] for rnd in rounds)
    mean_cpu = lambda mode, side: sum(cpu(runs[(op, rnd, mode)], side) for rnd in rounds) / len(rounds)
    print("%s, off: %.0f req/s; CPU per request: client %.1f us, server %.1f us"
          % (op, total("off") / len(rounds), mean_cpu("off", "client"), mean_cpu("off", "server")))
    for mode in ("signed", "mtls"):
        slow = 1 - total(mode) / total("off")
        per_round = sorted(1 - runs[(op, rnd, mode)]["requests_per_second"]
                           / runs[(op, rnd, "off")]["requests_per_second"] for rnd in rounds)
        median = statistics.median(per_round)
        print("%s, %s: TLS + authentication + encryption at rest cost %.1f%% of throughput by the"
              " median round (mean %.1f%%; rounds %s; target: at most 15%%): %s;"
              " CPU per request: client %+.1f us, server %+.1f us against off"
              % (op, mode, 100 * median, 100 * slow, " ".join("%.1f" % (100 * r) for r in per_round),
                 "within" if median <= 0.15 else "OVER",
                 mean_cpu(mode, "client") - mean_cpu("off", "client"),
                 mean_cpu(mode, "server") - mean_cpu("off", "server")))
PY
