#!/usr/bin/env bash
# Side-by-side benchmark: Warren vs RabbitMQ, same client (warren-perf), same run, alternating
# W, R, W, R... per scenario, then a table with ratios (bench/table.py).
#
# Usage: bench/compare.sh [options]
#   -d SECS       length of each run (default 15)
#   -r ROUNDS     runs per broker per scenario; the table uses the median (default 1)
#   -s LIST       comma-separated scenarios (default: all), from:
#                 idle,autoack,manual-ack,persistent,fanout,rate,store
#   -n N          messages for the storage scenario (default 1000000)
#   -o DIR        where to keep results.jsonl, broker logs and table.md (default: a temp dir)
#   --no-rabbit   Warren only
#   --no-rabbit-restart   in the storage scenario, do not restart RabbitMQ (RSS only)
#
# Warren is built --release and started by this script on a free loopback port with a temp data
# dir. RabbitMQ is used when rabbitmq-server is installed and running (or startable with
# `service rabbitmq-server start`) on 127.0.0.1:5672 as guest/guest; the storage scenario restarts
# it at the very end unless --no-rabbit-restart.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=15
ROUNDS=1
SCENARIOS=idle,autoack,manual-ack,persistent,fanout,rate,store
STORE_N=1000000
OUT=""
USE_RABBIT=1
RABBIT_RESTART=1
while [ $# -gt 0 ]; do
    case "$1" in
        -d) DUR=$2; shift 2 ;;
        -r) ROUNDS=$2; shift 2 ;;
        -s) SCENARIOS=$2; shift 2 ;;
        -n) STORE_N=$2; shift 2 ;;
        -o) OUT=$2; shift 2 ;;
        --no-rabbit) USE_RABBIT=0; shift ;;
        --no-rabbit-restart) RABBIT_RESTART=0; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

WORK=$(mktemp -d /tmp/warren-bench.XXXXXX)
OUT=${OUT:-$WORK}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"
PERF=target/release/warren-perf
WARREN_BIN=target/release/warren
WPID=""

log() { echo "[compare] $*" >&2; }

cleanup() {
    if [ -n "$WPID" ] && kill -0 "$WPID" 2>/dev/null; then
        kill -TERM "$WPID" 2>/dev/null || true
        wait "$WPID" 2>/dev/null || true
    fi
    if [ "$OUT" = "$WORK" ]; then rm -rf "$WORK/data"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

has_scenario() { [[ ",$SCENARIOS," == *",$1,"* ]]; }

wait_port() { # host port timeout_s
    local deadline=$((SECONDS + $3))
    while [ $SECONDS -lt $deadline ]; do
        if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    return 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

log "building release binaries"
cargo build --release --quiet --bin warren --bin warren-perf

WPORT=$(free_port)
start_warren() {
    "$WARREN_BIN" --bind 127.0.0.1 --port "$WPORT" --data-dir "$WORK/data" --http-port 0 --metrics-port 0 \
        >>"$OUT/warren.log" 2>&1 &
    WPID=$!
    wait_port 127.0.0.1 "$WPORT" 30 || { log "warren did not start"; exit 1; }
}
stop_warren() {
    kill -TERM "$WPID"
    wait "$WPID" 2>/dev/null || true
    WPID=""
}
start_warren
WURI="amqp://guest:guest@127.0.0.1:$WPORT/%2f"
log "warren pid $WPID on port $WPORT, data dir $WORK/data"

RURI="amqp://guest:guest@127.0.0.1:5672/%2f"
RPID=""
rabbit_pid() {
    rabbitmqctl status 2>/dev/null | sed -n 's/^OS PID: *\([0-9]*\).*/\1/p' | head -1 || true
}
if [ "$USE_RABBIT" = 1 ] && command -v rabbitmq-server >/dev/null; then
    RPID=$(rabbit_pid)
    if [ -z "$RPID" ]; then
        log "starting rabbitmq-server"
        service rabbitmq-server start >/dev/null 2>&1 || true
        RPID=$(rabbit_pid)
    fi
    if [ -n "$RPID" ] && wait_port 127.0.0.1 5672 10; then
        log "rabbitmq pid $RPID on port 5672 ($(rabbitmqctl version 2>/dev/null))"
    else
        log "rabbitmq not available; Warren only"
        RPID=""
    fi
fi

BROKERS="warren"
[ -n "$RPID" ] && BROKERS="warren rabbitmq"

# run_perf BROKER SCENARIO ARGS...: one warren-perf run, its JSON line appended to results.
run_perf() {
    local broker=$1 scenario=$2
    shift 2
    local uri pid
    if [ "$broker" = warren ]; then uri=$WURI; pid=$WPID; else uri=$RURI; pid=$RPID; fi
    log "$scenario on $broker: warren-perf $*"
    local line
    if line=$("$PERF" --uri "$uri" --broker-pid "$pid" --json --quiet \
        --label "$scenario" "$@" 2>>"$OUT/perf.log"); then :; else
        log "  (run reported an error; see $OUT/perf.log)"
    fi
    [ -n "$line" ] && echo "$line" | jq -c --arg b "$broker" '. + {target: $b}' >>"$RESULTS"
    echo "$line" | jq -r '"  publish \(.publish_rate|floor)/s deliver \(.consume_rate|floor)/s broker \(.broker.cpu_us_per_msg // 0 | . * 100 | floor / 100) µs/msg"' >&2 || true
}

record() { # BROKER SCENARIO JSON-FIELDS: a non-perf measurement
    jq -cn --arg b "$1" --arg l "$2" "$3"' + {target: $b, label: $l}' >>"$RESULTS"
}

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

echo "{\"meta\": {\"date\": \"$(date -u +%FT%TZ)\", \"nproc\": $(nproc), \"cpu\": \"$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)\", \"duration\": $DUR, \"rounds\": $ROUNDS}}" >"$OUT/meta.json"

if has_scenario idle; then
    sleep 2
    record warren idle "{idle_rss_kib: $(rss_kib "$WPID")}"
    [ -n "$RPID" ] && record rabbitmq idle "{idle_rss_kib: $(rss_kib "$RPID")}"
fi

declare -A ARGS=(
    [autoack]="--autoack --max-unconsumed 1000"
    [manual-ack]="--prefetch 100 --multi-ack-every 50 --max-unconsumed 1000"
    [persistent]="--persistent --queue-durable --confirm 100 --prefetch 100 --multi-ack-every 50"
    [fanout]="--fanout-queues 10 --autoack --max-unconsumed 1000"
    [rate]="--rate 10000 --autoack"
)
for scenario in autoack manual-ack persistent fanout rate; do
    has_scenario "$scenario" || continue
    for _ in $(seq "$ROUNDS"); do
        for broker in $BROKERS; do
            # shellcheck disable=SC2086
            run_perf "$broker" "$scenario" --duration "$DUR" --size 16 --purge \
                --queue-pattern "bench-$scenario-%d" ${ARGS[$scenario]}
        done
    done
done

if has_scenario store; then
    SARGS=(--consumers 0 --pmessages "$STORE_N" --size 16 --persistent --queue-durable
        --confirm 1000 --queue-pattern bench-store --purge --keep-queues)
    for broker in $BROKERS; do
        run_perf "$broker" store "${SARGS[@]}"
        sleep 2
        if [ "$broker" = warren ]; then
            record warren store-rss "{rss_kib: $(rss_kib "$WPID")}"
            log "restarting warren with $STORE_N messages queued"
            stop_warren
            # Timed from process start to a passive declare reporting every message.
            t0=$(date +%s.%N)
            start_warren
            if line=$("$PERF" --uri "$WURI" --queue-pattern bench-store --wait-count "$STORE_N" \
                --wait-timeout 60 --json 2>>"$OUT/perf.log"); then
                t1=$(date +%s.%N)
                record warren store-restart "{restart_s: $(elapsed "$t0" "$t1"), rss_after_kib: $(rss_kib "$WPID")}"
            else
                record warren store-restart "{restart_s: null, error: \"queue not recovered with $STORE_N messages\"}"
            fi
            "$PERF" --uri "$WURI" --queue-pattern bench-store --queue-durable --producers 0 \
                --consumers 0 --duration 0.1 --quiet 2>/dev/null || true
        else
            record rabbitmq store-rss "{rss_kib: $(rss_kib "$RPID")}"
            if [ "$RABBIT_RESTART" = 1 ]; then
                log "restarting rabbitmq with $STORE_N messages queued"
                service rabbitmq-server stop >/dev/null 2>&1 || true
                t0=$(date +%s.%N)
                service rabbitmq-server start >/dev/null 2>&1 &
                SVC=$!
                if line=$("$PERF" --uri "$RURI" --queue-pattern bench-store \
                    --wait-count "$STORE_N" --wait-timeout 300 --json 2>>"$OUT/perf.log"); then
                    t1=$(date +%s.%N)
                    wait "$SVC" || true
                    RPID=$(rabbit_pid)
                    record rabbitmq store-restart "{restart_s: $(elapsed "$t0" "$t1"), rss_after_kib: $(rss_kib "$RPID")}"
                else
                    wait "$SVC" || true
                    record rabbitmq store-restart "{restart_s: null, error: \"queue not recovered\"}"
                fi
                RPID=$(rabbit_pid)
            fi
            "$PERF" --uri "$RURI" --queue-pattern bench-store --queue-durable --producers 0 \
                --consumers 0 --duration 0.1 --quiet 2>/dev/null || true
        fi
    done
fi

python3 bench/table.py "$RESULTS" "$OUT/meta.json" | tee "$OUT/table.md"
log "results in $OUT (results.jsonl, table.md, perf.log, warren.log)"
