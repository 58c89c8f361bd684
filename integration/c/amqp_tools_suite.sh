#!/usr/bin/env bash
# rabbitmq-c's command-line tools (Debian's amqp-tools: amqp-publish, amqp-consume, amqp-get,
# amqp-declare-queue, amqp-delete-queue) against the broker: the compatibility cases of issue 7
# that the tools can express. They have no publisher confirms, nack, transactions or typed
# headers (-H sends long strings only); what amqp-publish puts in properties and headers is read
# back with pika (PYTHON, default integration/.venv/bin/python), since amqp-get prints only bodies.
#
# Every tool call runs under `timeout`; prints PASS/FAIL per case, then one line
# "c/amqp-tools: N/M passed"; exits 0 only if every case passed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HOST="${AMQP_HOST:-127.0.0.1}"
PORT="${AMQP_PORT:-5672}"
USER_="${AMQP_USER:-guest}"
PASS_="${AMQP_PASS:-guest}"
PYTHON="${PYTHON:-$HERE/../.venv/bin/python}"
T="${TOOL_TIMEOUT:-20}"   # seconds for one tool invocation
LABEL="c/amqp-tools"
RUN_ID="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/amqp-tools-suite.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

CONN=(--server "$HOST" --port "$PORT" --username "$USER_" --password "$PASS_")
name() { printf 'compat.%s.%s' "$1" "$RUN_ID"; }
tool() { timeout -k 2 "$T" "$@" "${CONN[@]}"; }
# Ends the case (each runs in its own subshell with errexit).
fail() { echo "$*" >&2; exit 1; }

# peek QUEUE: one message fetched with pika, printed as JSON (properties, headers, body).
peek() {
    AMQP_HOST="$HOST" AMQP_PORT="$PORT" timeout -k 2 "$T" "$PYTHON" - "$1" <<'PY'
import json, os, sys, time
import pika
p = pika.ConnectionParameters(os.environ["AMQP_HOST"], int(os.environ["AMQP_PORT"]),
                              credentials=pika.PlainCredentials(os.environ.get("AMQP_USER", "guest"),
                                                                os.environ.get("AMQP_PASS", "guest")))
conn = pika.BlockingConnection(p)
ch = conn.channel()
for _ in range(250):
    m, props, body = ch.basic_get(sys.argv[1], auto_ack=True)
    if m:
        break
    time.sleep(0.02)
else:
    sys.exit("no message")
print(json.dumps({"content_type": props.content_type, "content_encoding": props.content_encoding,
                  "delivery_mode": props.delivery_mode, "reply_to": props.reply_to,
                  "headers": {k: (v.decode() if isinstance(v, bytes) else v) for k, v in (props.headers or {}).items()},
                  "body": body.decode()}, sort_keys=True, ensure_ascii=False))
conn.close()
PY
}

case_connect() {
    local q out
    q="$(name connect)"
    out="$(tool amqp-declare-queue -q "$q")" || fail "amqp-declare-queue failed"
    [[ "$out" == "$q" ]] || fail "declare printed '$out', want '$q'"
    tool amqp-delete-queue -q "$q" >/dev/null
}

case_auth_failure() {
    local err rc=0
    err="$(timeout -k 2 "$T" amqp-declare-queue --server "$HOST" --port "$PORT" --username "$USER_" \
        --password definitely-wrong -q "$(name auth)" 2>&1)" || rc=$?
    [[ $rc != 0 ]] || fail "login with a wrong password succeeded"
    [[ $rc != 124 ]] || fail "login with a wrong password timed out"
    grep -q "403" <<<"$err" && grep -q "ACCESS_REFUSED" <<<"$err" \
        || fail "error is not 403 ACCESS_REFUSED: $err"
}

case_declare() {
    local q named err rc=0
    q="$(name declare)"
    [[ "$(tool amqp-declare-queue -d -q "$q")" == "$q" ]] || fail "durable declare"
    [[ "$(tool amqp-declare-queue -d -q "$q")" == "$q" ]] || fail "idempotent redeclare"
    err="$(tool amqp-declare-queue -q "$q" 2>&1)" && fail "redeclare as non-durable succeeded"
    grep -q "406" <<<"$err" || fail "non-durable redeclare of a durable queue is not 406: $err"
    named="$(tool amqp-declare-queue -q "")" || fail "server-named declare failed"
    [[ "$named" == amq.gen-* ]] || fail "server-named queue '$named'"
    tool amqp-delete-queue -q "$q" >/dev/null || fail "delete"
    err="$(tool amqp-get -q "$q" 2>&1)" && fail "get from a deleted queue succeeded"
    grep -q "404" <<<"$err" || fail "get from a deleted queue is not 404: $err"
}

case_publish_get() {
    local q got rc=0
    q="$(name get)"
    tool amqp-declare-queue -q "$q" >/dev/null
    tool amqp-publish -r "$q" -b "hello from rabbitmq-c" || fail "publish"
    got="$(tool amqp-get -q "$q")" || fail "get"
    [[ "$got" == "hello from rabbitmq-c" ]] || fail "got '$got'"
    tool amqp-get -q "$q" >/dev/null 2>&1 || rc=$?
    [[ $rc == 2 ]] || fail "get on an empty queue exited $rc, want 2"
    tool amqp-delete-queue -q "$q" >/dev/null
}

case_consume_prefetch_ack() {
    local q i got left
    q="$(name consume)"
    tool amqp-declare-queue -q "$q" >/dev/null
    for i in $(seq 0 9); do echo "m$i"; done | tool amqp-publish -r "$q" -l || fail "line-buffered publish"
    # 6 of 10 with prefetch 3 and an ack after each (the command's success)
    tool amqp-consume -q "$q" -p 3 -c 6 cat >"$WORK/consumed" || fail "amqp-consume"
    got="$(tr -d '\n' <"$WORK/consumed")"
    [[ "$got" == "m0m1m2m3m4m5" ]] || fail "consumed '$got'"
    # the 6 were acked; the 3 prefetched-but-unprocessed ones were requeued at close
    left="$(tool amqp-delete-queue -q "$q")" || fail "delete"
    [[ "$left" == 4 ]] || fail "queue had $left messages left, want 4"
}

case_exchange_binding() {
    local ex_key pid i
    ex_key="$(name binding)"
    tool amqp-consume -e amq.direct -r "$ex_key" -c 1 cat >"$WORK/bound" &
    pid=$!
    for i in $(seq 1 100); do
        [[ -s "$WORK/bound" ]] && break
        tool amqp-publish -e amq.direct -r "$ex_key" -b "via amq.direct" || true
        sleep 0.1
    done
    wait "$pid" || fail "amqp-consume on a bound server-named queue failed"
    [[ "$(head -1 "$WORK/bound")" == "via amq.direct" ]] || fail "got '$(cat "$WORK/bound")'"
}

case_properties_and_headers() {
    local q got want
    q="$(name props)"
    tool amqp-declare-queue -q "$q" >/dev/null
    tool amqp-publish -r "$q" -p -C application/x-warren-test -E identity -t reply.queue \
        -H "x-str: héllo wörld" -H "x-empty: " -H "x-colons: a:b:c" -b "props" || fail "publish"
    got="$(peek "$q")" || fail "peek"
    want='{"body": "props", "content_encoding": "identity", "content_type": "application/x-warren-test", "delivery_mode": 2, "headers": {"x-colons": "a:b:c", "x-empty": "", "x-str": "héllo wörld"}, "reply_to": "reply.queue"}'
    [[ "$got" == "$want" ]] || fail "round trip differs: got $got, want $want"
    tool amqp-delete-queue -q "$q" >/dev/null
}

case_large_message() {
    local q
    q="$(name large)"
    tool amqp-declare-queue -q "$q" >/dev/null
    "$PYTHON" -c '
import hashlib, sys
block = hashlib.sha256(b"warren").digest() * 32
size = 16 * 1024 * 1024
sys.stdout.buffer.write((block * (size // len(block)))[: size - 7] + b"TAIL-42")' >"$WORK/large.in"
    tool amqp-publish -r "$q" <"$WORK/large.in" || fail "publish 16 MiB"
    tool amqp-get -q "$q" >"$WORK/large.out" || fail "get 16 MiB"
    cmp -s "$WORK/large.in" "$WORK/large.out" \
        || fail "16 MiB body differs ($(stat -c %s "$WORK/large.out") bytes back)"
    tool amqp-delete-queue -q "$q" >/dev/null
}

case_delete_queue() {
    local q err
    q="$(name delete)"
    tool amqp-declare-queue -q "$q" >/dev/null
    tool amqp-publish -r "$q" -b "keep me" || fail "publish"
    sleep 0.2
    err="$(tool amqp-delete-queue -q "$q" --if-empty 2>&1)" && fail "delete --if-empty of a non-empty queue succeeded"
    grep -q "406" <<<"$err" || fail "delete --if-empty of a non-empty queue is not 406: $err"
    [[ "$(tool amqp-delete-queue -q "$q")" == 1 ]] || fail "delete did not report 1 message"
}

CASES=(connect auth_failure declare publish_get consume_prefetch_ack exchange_binding
    properties_and_headers large_message delete_queue)

echo "[$LABEL] broker $HOST:$PORT, run id $RUN_ID, $(dpkg-query -W -f '${Package} ${Version}' amqp-tools 2>/dev/null)"
passed=0
for c in "${CASES[@]}"; do
    start=$SECONDS
    # Not inside an `if`: errexit is ignored in a condition.
    out="$( (set -e; "case_$c") 2>&1)"
    if [[ $? == 0 ]]; then
        passed=$((passed + 1))
        echo "PASS $c ($((SECONDS - start))s)"
    else
        [[ -n "$out" ]] && sed 's/^/    /' <<<"$out"
        echo "FAIL $c ($((SECONDS - start))s): $(tail -1 <<<"$out")"
    fi
done
echo "$LABEL: $passed/${#CASES[@]} passed"
[[ $passed == "${#CASES[@]}" ]]
