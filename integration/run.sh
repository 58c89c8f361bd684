#!/usr/bin/env bash
# Black-box integration tests against the release binary of Warren: the RabbitMQ
# tutorials (Python/pika and Node/amqplib), the per-ecosystem client compatibility
# suites (Python pika blocking + asyncio, aio-pika, kombu, Celery; Node amqplib;
# Ruby bunny; C amqp-tools; Rust lapin + amqprs), then the crash test
# (crash_test.py: SIGKILL + restart on the same data dir, with its own broker), the
# web UI in headless Chromium (ui/ui_suite.js, with its own broker) and the binary run the
# way the Docker image runs it, in a minimal chroot as PID 1 (rootfs_check.sh, root only).
#
#   bash integration/run.sh                  build, start warren on a free port, test, SIGTERM it
#   WARREN_BIN=path bash integration/run.sh  use that binary instead of building
#   WARREN_EXTERNAL=127.0.0.1:5672 bash integration/run.sh
#                                            test an already running broker (e.g. RabbitMQ) as is
#   INTEGRATION_ONLY=python|node|ruby|c|rust|crash|ui|rootfs|tutorials|compat
#                                            run only those (comma-separated list)
#   CRASH_ARGS="--rounds 10 --seed 7"        extra arguments for crash_test.py
#   CRASH_TIMEOUT=600                        seconds for the whole crash test
#
#   COMPAT_TIMEOUT=300                       seconds for one compatibility suite
#   RUST_BUILD_TIMEOUT=1200                  seconds for building the Rust suites
#   UI_TIMEOUT=180                           seconds for the web UI suite
#   CHROMIUM=/usr/bin/chromium               the browser the UI suite drives
#   ROOTFS_TIMEOUT=120                       seconds for the Docker-like rootfs check
#
# Prints one summary line per tutorial set and per compatibility suite (e.g.
# "python/aio-pika: 9/9 passed") and "crash/kill9: N/M rounds passed", then
# "integration: N passed, M failed" (compatibility cases count one each);
# exits non-zero if anything failed or warren did not exit 0 on SIGTERM.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SCRIPT_TIMEOUT="${SCRIPT_TIMEOUT:-120}"   # seconds; each script also has its own watchdog
CRASH_TIMEOUT="${CRASH_TIMEOUT:-600}"     # seconds for crash_test.py (it has its own watchdog)
READY_TIMEOUT="${READY_TIMEOUT:-30}"      # seconds to wait for "ready to accept connections"
COMPAT_TIMEOUT="${COMPAT_TIMEOUT:-300}"   # seconds for one compatibility suite (each has its own watchdog)
RUST_BUILD_TIMEOUT="${RUST_BUILD_TIMEOUT:-1200}"
UI_TIMEOUT="${UI_TIMEOUT:-180}"           # seconds for the web UI suite (it has its own watchdog)
ROOTFS_TIMEOUT="${ROOTFS_TIMEOUT:-120}"   # seconds for rootfs_check.sh (its waits are bounded)
ONLY="${INTEGRATION_ONLY:-}"

# want PART...: true if INTEGRATION_ONLY is unset or names one of PART.
want() {
    [[ -z "$ONLY" ]] && return 0
    local p
    for p in "$@"; do
        [[ ",$ONLY," == *",$p,"* ]] && return 0
    done
    return 1
}

WORK="$(mktemp -d "${TMPDIR:-/tmp}/warren-integration.XXXXXX")"
LOGS="$WORK/logs"
mkdir -p "$LOGS"
BROKER_PID=""
KEEP_WORK=0

log() { printf '[integration] %s\n' "$*"; }

cleanup() {
    if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -KILL "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    if [[ "$KEEP_WORK" == 1 ]]; then
        log "logs kept in $LOGS"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- Python environment: integration/.venv with the pinned pika -------------
setup_python() {
    local venv="$HERE/.venv" req="$HERE/python/requirements.txt"
    if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import pika, aio_pika, kombu, celery' 2>/dev/null; then
        PYTHON="$venv/bin/python"
        return
    fi
    if [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv" >"$LOGS/venv.log" 2>&1; then
        if "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >>"$LOGS/venv.log" 2>&1; then
            PYTHON="$venv/bin/python"
            return
        fi
    fi
    log "venv unavailable (see below); falling back to pip --user"
    cat "$LOGS/venv.log" >&2 || true
    python3 -m pip install -q --user -r "$req" \
        || python3 -m pip install -q --user --break-system-packages -r "$req"
    PYTHON=python3
}

# --- Node environment: integration/node/node_modules from package-lock.json ---
setup_node() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        return 1
    fi
    if [[ ! -f "$HERE/node/node_modules/amqplib/package.json" ]]; then
        (cd "$HERE/node" && npm ci --no-audit --no-fund --loglevel=error) >"$LOGS/npm.log" 2>&1 || {
            cat "$LOGS/npm.log" >&2
            return 1
        }
    fi
}

# --- Rust environment: integration/rust (own Cargo.lock, own target dir) -------
RUST_BIN=""
setup_rust() {
    local dir="$HERE/rust"
    command -v cargo >/dev/null || { echo "cargo not found" >"$LOGS/rust-build.log"; return 1; }
    log "building the Rust compatibility suites (integration/rust, cached in integration/rust/target)"
    (cd "$dir" && CARGO_TARGET_DIR="$dir/target" timeout -k 10 "$RUST_BUILD_TIMEOUT" \
        cargo build --locked --quiet --bins) >"$LOGS/rust-build.log" 2>&1 || {
        tail -30 "$LOGS/rust-build.log" >&2
        return 1
    }
    RUST_BIN="$dir/target/debug"
}

# --- Compatibility suites ---------------------------------------------------------
# run_compat LABEL CMD...: runs one suite; it prints PASS/FAIL per case and ends with
# "LABEL: N/M passed". Its N and M-N are added to the totals.
run_compat() {
    local label="$1" out line rc=0 start=$SECONDS n m ok=0
    shift
    out="$LOGS/compat-${label//\//-}.log"
    AMQP_HOST="$HOST" AMQP_PORT="$PORT" timeout -k 5 "$COMPAT_TIMEOUT" "$@" >"$out" 2>&1 </dev/null || rc=$?
    line="$(grep -E "^$label: " "$out" | tail -1 || true)"
    if [[ "$line" =~ ^[^:]+:\ ([0-9]+)/([0-9]+)\ passed$ ]]; then
        n="${BASH_REMATCH[1]}"
        m="${BASH_REMATCH[2]}"
        TOTAL_PASSED=$((TOTAL_PASSED + n))
        TOTAL_FAILED=$((TOTAL_FAILED + m - n))
        if [[ $rc != 0 && $n == "$m" ]]; then
            TOTAL_FAILED=$((TOTAL_FAILED + 1))
            line="$line, but exit status $rc"
        elif [[ $rc == 0 && $n == "$m" ]]; then
            ok=1
        fi
    else
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        line="$label: FAILED, exit status $rc${line:+ ($line)}, no summary line"
    fi
    SUMMARY+=("$line")
    if [[ $ok == 1 ]]; then
        log "PASS $label ($((SECONDS - start))s)"
    else
        KEEP_WORK=1
        log "FAIL $label (exit $rc, $((SECONDS - start))s):"
        { grep -E '^FAIL ' "$out" || tail -30 "$out"; } | sed 's/^/    /'
    fi
    check_broker_alive "$label"
}

# compat_missing LABEL REASON: a suite that could not run counts as one failure.
compat_missing() {
    log "FAIL $1: $2"
    SUMMARY+=("$1: FAILED, $2")
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
    KEEP_WORK=1
}

check_broker_alive() {
    if [[ -n "$BROKER_PID" ]] && ! kill -0 "$BROKER_PID" 2>/dev/null; then
        log "warren died during $1; its log ends:"
        { tail -50 "$LOGS/warren.log" || true; } | sed 's/^/    /'
        KEEP_WORK=1
        SUMMARY+=("warren died during $1")
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        finish
    fi
}

run_compat_suites() {
    local py="$HERE/python/compat"
    if want python compat; then
        run_compat python/pika-blocking "$PYTHON" "$py/pika_blocking.py"
        run_compat python/pika-asyncio "$PYTHON" "$py/pika_asyncio.py"
        run_compat python/aio-pika "$PYTHON" "$py/aio_pika_suite.py"
        run_compat python/kombu "$PYTHON" "$py/kombu_suite.py"
        run_compat python/celery "$PYTHON" "$py/celery_suite.py"
    fi
    if want node compat; then
        if [[ $NODE_OK == 1 ]]; then
            run_compat node/amqplib node "$HERE/node/compat/amqplib_suite.js"
        else
            compat_missing node/amqplib "node/npm unavailable"
        fi
    fi
    if want ruby compat; then
        if command -v ruby >/dev/null && ruby -e 'require "bunny"' 2>/dev/null; then
            run_compat ruby/bunny ruby "$HERE/ruby/bunny_suite.rb"
        else
            compat_missing ruby/bunny "ruby with bunny unavailable (apt-get install ruby-bunny)"
        fi
    fi
    if want c compat; then
        if command -v amqp-publish >/dev/null; then
            run_compat c/amqp-tools env PYTHON="$PYTHON" bash "$HERE/c/amqp_tools_suite.sh"
        else
            compat_missing c/amqp-tools "amqp-tools unavailable (apt-get install amqp-tools)"
        fi
    fi
    if want rust compat; then
        if [[ -n "$RUST_BIN" ]]; then
            run_compat rust/lapin "$RUST_BIN/compat-lapin"
            run_compat rust/amqprs "$RUST_BIN/compat-amqprs"
        else
            compat_missing rust/lapin+amqprs "the suites did not build (see $LOGS/rust-build.log)"
        fi
    fi
}

# --- Broker ------------------------------------------------------------------
BIN=""
# Sets BIN: $WARREN_BIN, or a fresh release build.
resolve_bin() {
    [[ -n "$BIN" ]] && return
    BIN="${WARREN_BIN:-}"
    if [[ -z "$BIN" ]]; then
        log "cargo build --release"
        (cd "$ROOT" && cargo build --release --quiet)
        BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/warren"
    fi
    [[ -x "$BIN" ]] || { log "no executable at $BIN"; exit 1; }
}

start_warren() {
    resolve_bin
    local bin="$BIN"

    PORT="${WARREN_TEST_PORT:-$(free_port)}"
    HOST=127.0.0.1
    mkdir -p "$WORK/data"
    log "starting $bin on $HOST:$PORT (data dir $WORK/data)"
    # The HTTP listeners are tested in tests/http_api.rs; off here so runs never clash on 15672.
    "$bin" --bind "$HOST" --port "$PORT" --data-dir "$WORK/data" --http-port 0 --metrics-port 0 >"$LOGS/warren.log" 2>&1 &
    BROKER_PID=$!

    local deadline=$((SECONDS + READY_TIMEOUT))
    until grep -q "ready to accept connections" "$LOGS/warren.log" 2>/dev/null; do
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            log "warren exited before it was ready:"
            cat "$LOGS/warren.log"
            KEEP_WORK=1
            exit 1
        fi
        if ((SECONDS > deadline)); then
            log "warren not ready after ${READY_TIMEOUT}s:"
            tail -50 "$LOGS/warren.log"
            KEEP_WORK=1
            exit 1
        fi
        sleep 0.1
    done
    log "warren is ready (pid $BROKER_PID)"
}

# --- Test scripts --------------------------------------------------------------
TOTAL_PASSED=0
TOTAL_FAILED=0
SUMMARY=()

# run_suite LABEL INTERPRETER DIR EXT: runs every DIR/*.EXT not starting with "_".
run_suite() {
    local label="$1" interp="$2" dir="$3" ext="$4" passed=0 failed=0 f name start rc out
    for f in "$dir"/*."$ext"; do
        name="$(basename "$f")"
        [[ "$name" == _* ]] && continue
        start=$SECONDS
        rc=0
        out="$LOGS/${label//\//-}-$name.log"
        AMQP_HOST="$HOST" AMQP_PORT="$PORT" timeout -k 5 "$SCRIPT_TIMEOUT" \
            "$interp" "$f" >"$out" 2>&1 </dev/null || rc=$?
        if [[ $rc == 0 ]]; then
            passed=$((passed + 1))
            log "PASS $label $name ($((SECONDS - start))s)"
        else
            failed=$((failed + 1))
            KEEP_WORK=1
            log "FAIL $label $name (exit $rc, $((SECONDS - start))s); last lines:"
            { tail -30 "$out" || true; } | sed 's/^/    /'
        fi
        if [[ -n "$BROKER_PID" ]] && ! kill -0 "$BROKER_PID" 2>/dev/null; then
            log "warren died during $label $name; its log ends:"
            { tail -50 "$LOGS/warren.log" || true; } | sed 's/^/    /'
            KEEP_WORK=1
            SUMMARY+=("$label: $passed/$((passed + failed)) passed, then warren died")
            TOTAL_PASSED=$((TOTAL_PASSED + passed))
            TOTAL_FAILED=$((TOTAL_FAILED + failed + 1))
            finish
        fi
    done
    SUMMARY+=("$label: $passed/$((passed + failed)) passed")
    TOTAL_PASSED=$((TOTAL_PASSED + passed))
    TOTAL_FAILED=$((TOTAL_FAILED + failed))
}

# A pika client holds a connection open while warren gets SIGTERM; it must be
# closed by the broker with 320 CONNECTION_FORCED, and warren must exit 0.
stop_warren() {
    local probe_log="$LOGS/shutdown-probe.log" probe_pid rc=0 probe_rc=0 deadline
    AMQP_HOST="$HOST" AMQP_PORT="$PORT" timeout -k 5 60 \
        "$PYTHON" "$HERE/python/_shutdown_probe.py" >"$probe_log" 2>&1 </dev/null &
    probe_pid=$!
    deadline=$((SECONDS + 15))
    until grep -q "connected" "$probe_log" 2>/dev/null || ((SECONDS > deadline)); do sleep 0.1; done

    kill -TERM "$BROKER_PID"
    deadline=$((SECONDS + 20))
    while kill -0 "$BROKER_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$BROKER_PID" 2>/dev/null; then
        log "FAIL warren still running 20s after SIGTERM"
        kill -KILL "$BROKER_PID" 2>/dev/null || true
        rc=137
    fi
    wait "$BROKER_PID" || rc=$?
    BROKER_PID=""
    wait "$probe_pid" || probe_rc=$?

    if [[ $rc == 0 ]]; then
        TOTAL_PASSED=$((TOTAL_PASSED + 1))
        SUMMARY+=("warren/sigterm: exited 0")
    else
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        KEEP_WORK=1
        SUMMARY+=("warren/sigterm: FAILED, exit status $rc")
        { tail -30 "$LOGS/warren.log" || true; } | sed 's/^/    /'
    fi
    if [[ $probe_rc == 0 ]]; then
        TOTAL_PASSED=$((TOTAL_PASSED + 1))
        SUMMARY+=("warren/sigterm: open connection closed with 320")
    else
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        KEEP_WORK=1
        SUMMARY+=("warren/sigterm: FAILED, open connection not closed with 320")
        sed 's/^/    /' "$probe_log"
    fi
}

# crash_test.py starts, SIGKILLs and restarts its own warren (free port, data dirs under
# $WORK/crash); against WARREN_EXTERNAL it runs without kills, checking only the script.
run_crash() {
    local out="$LOGS/crash_test.log" rc=0 start=$SECONDS line args=()
    if [[ -n "${WARREN_EXTERNAL:-}" ]]; then
        args=(--external "$WARREN_EXTERNAL")
    else
        resolve_bin
        args=(--bin "$BIN" --work "$WORK/crash")
    fi
    # shellcheck disable=SC2206 # CRASH_ARGS is split on purpose
    args+=(${CRASH_ARGS:-})
    log "crash test: ${args[*]}"
    TEST_TIMEOUT="$CRASH_TIMEOUT" timeout -k 5 "$((CRASH_TIMEOUT + 30))" \
        "$PYTHON" "$HERE/crash_test.py" "${args[@]}" >"$out" 2>&1 </dev/null || rc=$?
    sed -n 's/^\[crash\] /    /p' "$out"
    line="$(grep -E '^crash/' "$out" | tail -1 || true)"
    if [[ $rc == 0 && -n "$line" ]]; then
        TOTAL_PASSED=$((TOTAL_PASSED + 1))
        log "PASS crash_test.py ($((SECONDS - start))s)"
        SUMMARY+=("$line")
    else
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        KEEP_WORK=1
        log "FAIL crash_test.py (exit $rc, $((SECONDS - start))s); last lines:"
        { tail -30 "$out" || true; } | sed 's/^/    /'
        SUMMARY+=("${line:-crash/kill9: FAILED, exit status $rc}")
    fi
}

# ui/ui_suite.js starts its own warren (HTTP on a free port) and drives the web UI in
# headless Chromium; it prints "ui/chromium: N/M passed" and saves screenshots.
run_ui() {
    local label=ui/chromium out="$LOGS/ui.log" rc=0 start=$SECONDS line n m
    local chromium="${CHROMIUM:-/usr/bin/chromium}"
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        compat_missing "$label" "node/npm unavailable"
        return
    fi
    if [[ ! -x "$chromium" ]]; then
        compat_missing "$label" "no browser at $chromium (apt-get install chromium)"
        return
    fi
    if [[ ! -f "$HERE/ui/node_modules/playwright-core/package.json" ]]; then
        (cd "$HERE/ui" && npm ci --no-audit --no-fund --loglevel=error) >"$LOGS/npm-ui.log" 2>&1 || {
            cat "$LOGS/npm-ui.log" >&2
            compat_missing "$label" "npm ci failed in integration/ui"
            return
        }
    fi
    resolve_bin
    start=$SECONDS
    CHROMIUM="$chromium" SUITE_TIMEOUT="$((UI_TIMEOUT - 10))" timeout -k 5 "$UI_TIMEOUT" \
        node "$HERE/ui/ui_suite.js" --bin "$BIN" --work "$WORK/ui" >"$out" 2>&1 </dev/null || rc=$?
    grep -E '^ +screenshot' "$out" | sed 's/^ */    /' || true
    line="$(grep -E "^$label: " "$out" | tail -1 || true)"
    if [[ "$line" =~ ^[^:]+:\ ([0-9]+)/([0-9]+)\ passed$ ]]; then
        n="${BASH_REMATCH[1]}"
        m="${BASH_REMATCH[2]}"
        TOTAL_PASSED=$((TOTAL_PASSED + n))
        TOTAL_FAILED=$((TOTAL_FAILED + m - n))
        if [[ $rc != 0 && $n == "$m" ]]; then
            TOTAL_FAILED=$((TOTAL_FAILED + 1))
            line="$line, but exit status $rc"
        fi
    else
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        line="$label: FAILED, exit status $rc, no summary line"
    fi
    SUMMARY+=("$line")
    if [[ $rc == 0 ]]; then
        log "PASS $label ($((SECONDS - start))s)"
    else
        KEEP_WORK=1
        log "FAIL $label (exit $rc, $((SECONDS - start))s):"
        { grep -E -A3 '^FAIL ' "$out" || tail -30 "$out"; } | sed 's/^/    /'
    fi
}

# rootfs_check.sh builds a minimal root filesystem and runs the binary in it as the Dockerfile
# does (chroot, namespaces, non-root USER, ENV, HEALTHCHECK); it prints "rootfs: N/M passed",
# or exits 77 after "rootfs: skipped, REASON" where it cannot run (not root, no unshare).
run_rootfs() {
    local label=rootfs out="$LOGS/rootfs.log" rc=0 start=$SECONDS line n m
    resolve_bin
    WARREN_BIN="$BIN" PYTHON="$PYTHON" timeout -k 5 "$ROOTFS_TIMEOUT" \
        bash "$HERE/rootfs_check.sh" >"$out" 2>&1 </dev/null || rc=$?
    line="$(grep -E "^$label: " "$out" | tail -1 || true)"
    if [[ $rc == 77 && "$line" == "$label: skipped"* ]]; then
        log "SKIP $label: ${line#"$label: skipped, "}"
        SUMMARY+=("$line")
        return
    fi
    if [[ "$line" =~ ^[^:]+:\ ([0-9]+)/([0-9]+)\ passed$ ]]; then
        n="${BASH_REMATCH[1]}"
        m="${BASH_REMATCH[2]}"
        TOTAL_PASSED=$((TOTAL_PASSED + n))
        TOTAL_FAILED=$((TOTAL_FAILED + m - n))
        if [[ $rc != 0 && $n == "$m" ]]; then
            TOTAL_FAILED=$((TOTAL_FAILED + 1))
            line="$line, but exit status $rc"
        fi
    else
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        line="$label: FAILED, exit status $rc, no summary line"
    fi
    SUMMARY+=("$line")
    if [[ $rc == 0 ]]; then
        log "PASS $label ($((SECONDS - start))s)"
    else
        KEEP_WORK=1
        log "FAIL $label (exit $rc, $((SECONDS - start))s):"
        { grep -E -A20 'FAIL ' "$out" || tail -30 "$out"; } | sed 's/^/    /'
    fi
}

finish() {
    local line
    echo
    for line in "${SUMMARY[@]}"; do echo "$line"; done
    echo "integration: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
    if ((TOTAL_FAILED > 0)); then exit 1; fi
    exit 0
}

# --- Main ----------------------------------------------------------------------
setup_python
log "python: $("$PYTHON" -c 'import sys, pika; print(sys.version.split()[0], "pika", pika.__version__)')"
NODE_OK=1
if want node tutorials compat; then
    if setup_node; then
        log "node: $(node --version) amqplib $(node -p "require('$HERE/node/node_modules/amqplib/package.json').version")"
    else
        NODE_OK=0
    fi
fi

if [[ -n "${WARREN_EXTERNAL:-}" ]]; then
    HOST="${WARREN_EXTERNAL%:*}"
    PORT="${WARREN_EXTERNAL##*:}"
    log "testing the broker already running at $HOST:$PORT"
fi
if want rust compat; then
    setup_rust || log "the Rust compatibility suites did not build"
fi
if [[ -z "${WARREN_EXTERNAL:-}" ]] && want python node ruby c rust tutorials compat; then
    start_warren
fi

if want python tutorials; then
    run_suite python/pika-tutorials "$PYTHON" "$HERE/python" py
fi
if want node tutorials; then
    if [[ $NODE_OK == 1 ]]; then
        run_suite node/amqplib-tutorials node "$HERE/node" js
    else
        log "FAIL node/npm missing or npm ci failed"
        SUMMARY+=("node/amqplib-tutorials: FAILED, node/npm unavailable")
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
    fi
fi
run_compat_suites

if [[ -n "$BROKER_PID" ]]; then
    stop_warren
fi
if want ui; then
    if [[ -n "${WARREN_EXTERNAL:-}" ]]; then
        log "skipping the web UI suite: it tests Warren's own UI"
    else
        run_ui
    fi
fi
if want rootfs; then
    if [[ -n "${WARREN_EXTERNAL:-}" ]]; then
        log "skipping the rootfs check: it runs Warren's own binary"
    else
        run_rootfs
    fi
fi
if want crash; then
    run_crash
fi
finish
