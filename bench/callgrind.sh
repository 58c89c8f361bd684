#!/usr/bin/env bash
# Broker instructions per message, counted by callgrind: repeatable where timings on this shared
# machine are not. Starts Warren under `valgrind --tool=callgrind` on a free loopback port, runs
# a fixed number of messages through it with warren-perf, stops it, and prints the total
# instruction count divided by the message count (start-up and shutdown included; they are
# under 1% at the default 200,000 messages).
#
# Usage: bench/callgrind.sh [-n MESSAGES] [-o DIR] [SCENARIO...]
#   scenarios: autoack (default), manual, persistent, fanout
#   -o DIR keeps callgrind.out.<scenario> for callgrind_annotate (default: a temp dir)
# Needs valgrind. Builds release binaries with line tables (in target/callgrind, so the normal
# release build is left alone) so annotations name source lines.
set -euo pipefail
cd "$(dirname "$0")/.."
N=200000
OUT=""
SCENARIOS=()
while [ $# -gt 0 ]; do
    case "$1" in
        -n) N=$2; shift 2 ;;
        -o) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) SCENARIOS+=("$1"); shift ;;
    esac
done
[ ${#SCENARIOS[@]} -eq 0 ] && SCENARIOS=(autoack)
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
WORK=$(mktemp -d /tmp/warren-callgrind.XXXXXX)
OUT=${OUT:-$WORK}
mkdir -p "$OUT"
trap 'rm -rf "$WORK/data"' EXIT
BIN=target/callgrind/release
CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release --quiet --target-dir target/callgrind \
    --bin warren --bin warren-perf
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for sc in "${SCENARIOS[@]}"; do
    case $sc in
        autoack) args=(--autoack --max-unconsumed 1000) ;;
        manual) args=(--prefetch 100 --multi-ack-every 50 --max-unconsumed 1000) ;;
        persistent) args=(--persistent --queue-durable --confirm 100 --prefetch 100 --multi-ack-every 50) ;;
        fanout) args=(--fanout-queues 10 --autoack --max-unconsumed 1000) ;;
        *) echo "unknown scenario $sc" >&2; exit 2 ;;
    esac
    rm -rf "$WORK/data"
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.$sc" \
        "$BIN/warren" --bind 127.0.0.1 --port "$PORT" --data-dir "$WORK/data" \
        --http-port 0 --metrics-port 0 >/dev/null 2>"$WORK/valgrind.$sc.log" &
    vpid=$!
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
        sleep 0.2
    done
    "$BIN/warren-perf" --uri "amqp://guest:guest@127.0.0.1:$PORT/%2f" --size 16 \
        --duration 600 --pmessages "$N" --cmessages "$N" "${args[@]}" --quiet --json >/dev/null
    kill -TERM "$vpid"
    wait "$vpid" || true
    total=$(grep -o 'refs: *[0-9,]*' "$WORK/valgrind.$sc.log" | tr -dc 0-9)
    echo "$sc: $total instructions, $((total / N)) per message ($N messages)"
done
