#!/usr/bin/env bash
# Flow control: a producer 10x faster than its consumer for a minute. Shows that the broker's
# memory stays bounded while the backlog grows, and that nothing is lost: afterwards the queue's
# own counters must satisfy published == acked + still queued, and draining the queue must
# deliver every message it reports.
#
# Usage: bench/flow-control.sh [-d SECS] [-p RATE] [-c RATE] [--rabbit]
#   -d SECS     length of the run (default 60)
#   -p RATE     producer rate, msg/s (default 20000)
#   -c RATE     consumer rate, msg/s (default 2000)
#   --rabbit    also run it against RabbitMQ on 127.0.0.1:5672 (management API on 15672)
#
# The producer publishes 16-byte transient messages with confirms (window 100) to one
# non-durable queue; the consumer acks manually (prefetch 100, multi-ack every 50).
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=60
PRATE=20000
CRATE=2000
RABBIT=0
while [ $# -gt 0 ]; do
    case "$1" in
        -d) DUR=$2; shift 2 ;;
        -p) PRATE=$2; shift 2 ;;
        -c) CRATE=$2; shift 2 ;;
        --rabbit) RABBIT=1; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

PERF=target/release/warren-perf
WARREN_BIN=target/release/warren
WORK=$(mktemp -d /tmp/warren-flow.XXXXXX)
WPID=""
log() { echo "[flow] $*" >&2; }
cleanup() {
    if [ -n "$WPID" ] && kill -0 "$WPID" 2>/dev/null; then
        kill -TERM "$WPID" 2>/dev/null || true
        wait "$WPID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
    local deadline=$((SECONDS + 30))
    while [ $SECONDS -lt $deadline ]; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    return 1
}

cargo build --release --quiet --bin warren --bin warren-perf

# run BROKER URI PID API: the slow-consumer run, then the loss check and the drain.
run() {
    local broker=$1 uri=$2 pid=$3 api=$4 q="flow-control-q"
    log "$broker: producer $PRATE msg/s, consumer $CRATE msg/s, ${DUR}s"
    local line
    line=$("$PERF" --uri "$uri" --broker-pid "$pid" --json --quiet --label flow \
        --queue-pattern "$q" --purge --keep-queues --size 16 --confirm 100 \
        --prefetch 100 --multi-ack-every 50 --rate "$PRATE" --consumer-rate "$CRATE" \
        --duration "$DUR" 2>>"$WORK/perf.log")
    # Unacked deliveries return to the queue when the consumer closes; let the counters settle
    # (RabbitMQ refreshes its management figures every 5 s).
    sleep 6
    local qjson
    qjson=$(curl -sf -u guest:guest "$api/api/queues/%2F/$q")
    local published acked queued
    published=$(jq '.message_stats.publish' <<<"$qjson")
    acked=$(jq '.message_stats.ack' <<<"$qjson")
    queued=$(jq '.messages' <<<"$qjson")
    log "  drain the $queued queued messages"
    local drained
    drained=$("$PERF" --uri "$uri" --json --quiet --producers 0 --consumers 1 --prefetch 1000 \
        --multi-ack-every 500 --cmessages "$queued" --queue-pattern "$q" --drain-timeout 120 \
        2>>"$WORK/perf.log" | jq '.delivered')
    "$PERF" --uri "$uri" --queue-pattern "$q" --producers 0 --consumers 0 --duration 0.1 \
        --quiet 2>/dev/null || true
    jq -n --arg b "$broker" --argjson run "$line" --argjson p "$published" \
        --argjson a "$acked" --argjson q "$queued" --argjson d "$drained" '{
        broker: $b, publish_rate: ($run.publish_rate | floor),
        consume_rate: ($run.consume_rate | floor),
        rss_start_mib: ($run.broker.rss_start_kib / 1024 | . * 10 | floor / 10),
        rss_peak_mib: ($run.broker.rss_peak_kib / 1024 | . * 10 | floor / 10),
        rss_end_mib: ($run.broker.rss_end_kib / 1024 | . * 10 | floor / 10),
        queue_published: $p, queue_acked: $a, queued_after: $q, drained: $d,
        lost: ($p - $a - $q), all_drained: ($d == $q)}'
}

WPORT=$(free_port)
HPORT=$(free_port)
"$WARREN_BIN" --bind 127.0.0.1 --port "$WPORT" --data-dir "$WORK/data" --http-bind 127.0.0.1 \
    --http-port "$HPORT" --metrics-port 0 >>"$WORK/warren.log" 2>&1 &
WPID=$!
wait_port "$WPORT" || { log "warren did not start"; exit 1; }
run warren "amqp://guest:guest@127.0.0.1:$WPORT/%2f" "$WPID" "http://127.0.0.1:$HPORT"

if [ "$RABBIT" = 1 ]; then
    RPID=$(rabbitmqctl status 2>/dev/null | sed -n 's/^OS PID: *\([0-9]*\).*/\1/p' | head -1)
    [ -n "$RPID" ] || { log "rabbitmq is not running"; exit 1; }
    run rabbitmq "amqp://guest:guest@127.0.0.1:5672/%2f" "$RPID" "http://127.0.0.1:15672"
fi
