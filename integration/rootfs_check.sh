#!/usr/bin/env bash
# Runs the release binary the way the Docker image runs it, without a Docker engine: a minimal
# root filesystem holding only the binary, the shared libraries it links (as debian:bookworm-slim,
# the runtime stage, provides them), bash for the health check, /etc/passwd and /etc/group with
# the image's user, and the data dir owned by that user. Warren runs in it as PID 1 of its own
# PID, mount and UTS namespaces, chrooted and as the Dockerfile's USER, with the Dockerfile's ENV
# (docker_spec.py reads them, and the HEALTHCHECK and ENTRYPOINT, from the Dockerfile itself).
#
#   sudo bash integration/rootfs_check.sh          WARREN_BIN=path to test another binary
#
# Cases: the Dockerfile and docker-compose.yml agree; the binary runs in the rootfs; the broker
# starts as the image's non-root user; the HEALTHCHECK command succeeds inside (docker exec
# style); a host pika client publishes a persistent message to a durable queue; AMQPS works with
# mounted PEM files; the management API, web UI and metrics answer; SIGTERM to PID 1 (docker stop) exits 0 within 10 s; the health
# check then fails; a restart on the same data dir (the volume) still has the message; and a
# data dir the user cannot write makes it exit non-zero with an error naming the dir.
#
# Prints "rootfs: N/M passed" last; exit 0 if all passed, 1 if not, 77 (after
# "rootfs: skipped, REASON") if it cannot run here: it needs root, unshare, nsenter and chroot.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BIN="${WARREN_BIN:-$ROOT/target/release/warren}"
PYTHON="${PYTHON:-$HERE/.venv/bin/python}"
[[ -x "$PYTHON" ]] || PYTHON=python3
READY_TIMEOUT="${READY_TIMEOUT:-30}"   # seconds to wait for "ready to accept connections"
STOP_GRACE=10                          # docker stop's default grace period, seconds

log() { printf '[rootfs] %s\n' "$*"; }
skip() {
    log "skipped: $1"
    echo "rootfs: skipped, $1"
    exit 77
}

[[ $EUID == 0 ]] || skip "needs root (chroot and namespaces)"
for tool in unshare nsenter chroot ldd pgrep openssl; do
    command -v "$tool" >/dev/null || skip "$tool not found"
done
[[ -x "$BIN" ]] || { log "no executable at $BIN (cargo build --release, or set WARREN_BIN)"; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/warren-rootfs.XXXXXX")"
mkdir "$WORK/probe"
if ! unshare --pid --fork --mount --uts --propagation private \
    mount -t proc proc "$WORK/probe" 2>/dev/null; then
    rm -rf "$WORK"
    skip "unshare cannot create PID/mount/UTS namespaces and mount /proc in them here"
fi
rmdir "$WORK/probe"
RFS="$WORK/rootfs"
UNSHARE_PID=""
CGROUP=""
KEEP_WORK=0
PASSED=0
FAILED=0

cleanup() {
    if [[ -n "$UNSHARE_PID" ]] && kill -0 "$UNSHARE_PID" 2>/dev/null; then
        # --kill-child: the container's PID 1 dies with unshare, and the namespace with it.
        kill -KILL "$UNSHARE_PID" 2>/dev/null || true
        wait "$UNSHARE_PID" 2>/dev/null || true
    fi
    if [[ -n "${CGROUP:-}" ]]; then
        rmdir "$CGROUP" 2>/dev/null || true
    fi
    if [[ $KEEP_WORK == 1 ]]; then
        log "files kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

pass() {
    PASSED=$((PASSED + 1))
    log "PASS $1"
}
fail() {
    FAILED=$((FAILED + 1))
    KEEP_WORK=1
    log "FAIL $1"
    if [[ -n "${2:-}" && -f "$2" ]]; then
        tail -20 "$2" | sed 's/^/    /'
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- 1. What the image is -----------------------------------------------------------
if python3 "$HERE/docker_spec.py" "$ROOT/Dockerfile" "$ROOT/docker-compose.yml" >"$WORK/spec.sh" 2>"$WORK/spec.err"; then
    pass "Dockerfile and docker-compose.yml are consistent"
else
    fail "Dockerfile and docker-compose.yml" "$WORK/spec.err"
fi
grep -v '^PROBLEM' "$WORK/spec.err" | sed 's/^/    /' || true
IMG_ENV=() IMG_USER="" IMG_ENTRYPOINT=() IMG_HEALTHCHECK=() IMG_HC_TIMEOUT=30 IMG_UID="" IMG_GID=""
# shellcheck source=/dev/null
source "$WORK/spec.sh"
if [[ ${#IMG_ENTRYPOINT[@]} == 0 || ${#IMG_HEALTHCHECK[@]} == 0 || -z "$IMG_UID" || -z "$IMG_GID" ]]; then
    log "the Dockerfile lacks ENTRYPOINT, HEALTHCHECK or the user's uid; cannot go on"
    echo "rootfs: $PASSED/$((PASSED + FAILED + 1)) passed"
    exit 1
fi

# --- 2. The root filesystem ------------------------------------------------------------
# debian:bookworm-slim has merged /usr; ldd's paths (/lib/..., /lib64/...) land under usr/.
mkdir -p "$RFS"/{usr/bin,usr/sbin,usr/lib,usr/lib64,usr/local/bin,etc/warren,var/lib,tmp,proc,sys,dev,root}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$RFS/$d"; done
chmod 0755 "$RFS"   # mktemp made WORK 0700; the image's / is world-traversable
chmod 1777 "$RFS/tmp"

# copy_in HOST_FILE ROOTFS_PATH: the file and every shared library ldd lists for it.
copy_in() {
    local lib
    install -D -m 0755 "$1" "$RFS$2"
    for lib in $(ldd "$1" | grep -o '/[^ ]*'); do
        [[ -e "$RFS$lib" ]] || install -D -m 0755 "$(readlink -f "$lib")" "$RFS$lib"
    done
}
copy_in "$BIN" "${IMG_ENTRYPOINT[0]}"
copy_in "$(command -v bash)" /usr/bin/bash

cat >"$RFS/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/bash
warren:x:$IMG_UID:$IMG_GID::/var/lib/warren:/usr/sbin/nologin
EOF
cat >"$RFS/etc/group" <<EOF
root:x:0:
warren:x:$IMG_GID:
EOF

DATA_DIR=""
for kv in "${IMG_ENV[@]}"; do
    [[ $kv == WARREN_DATA_DIR=* ]] && DATA_DIR="${kv#*=}"
done
mkdir -p "$RFS$DATA_DIR"
chown "$IMG_UID:$IMG_GID" "$RFS$DATA_DIR"

# Ports are per container under Docker; here the host's network is shared, so free ones. The
# management and metrics ports come from a mounted config file, the way compose shows it.
AMQP_PORT="$(free_port)"
HTTP_PORT="$(free_port)"
METRICS_PORT="$(free_port)"
cat >"$RFS/etc/warren/warren.toml" <<EOF
http_port = $HTTP_PORT
metrics_port = $METRICS_PORT
EOF
# AMQPS with PEM files "mounted" read-only, the key readable only by the image's user.
TLS_PORT="$(free_port)"
mkdir -p "$RFS/etc/warren/tls"
if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$RFS/etc/warren/tls/server.key" -out "$RFS/etc/warren/tls/server.pem" >"$WORK/openssl.log" 2>&1; then
    log "openssl could not make a test certificate:"
    sed 's/^/    /' "$WORK/openssl.log"
    exit 1
fi
chmod 0644 "$RFS/etc/warren/tls/server.pem"
chown "$IMG_UID:$IMG_GID" "$RFS/etc/warren/tls/server.key"
chmod 0600 "$RFS/etc/warren/tls/server.key"
USER_NAME=warren
USER_PASS="rootfs-$RANDOM$RANDOM"

# The container's environment: Docker's PATH and HOME, the image's ENV, then `docker run -e`
# (NO_COLOR only keeps the logs this script greps and prints free of ANSI colours).
CENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/var/lib/warren
    HOSTNAME=warren-rootfs "${IMG_ENV[@]}" "WARREN_PORT=$AMQP_PORT"
    WARREN_CONFIG=/etc/warren/warren.toml "WARREN_DEFAULT_USER=$USER_NAME"
    "WARREN_DEFAULT_PASS=$USER_PASS" WARREN_TLS_CERT=/etc/warren/tls/server.pem
    WARREN_TLS_KEY=/etc/warren/tls/server.key "WARREN_TLS_PORT=$TLS_PORT" NO_COLOR=1)

# The container's PID 1 side: runs in the new namespaces, mounts what Docker mounts, then
# becomes the entrypoint, chrooted and as USER.
cat >"$WORK/init.sh" <<'EOF'
set -e
rfs="$1" userspec="$2"
shift 2
hostname warren-rootfs
mount -t proc -o nosuid,nodev,noexec proc "$rfs/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$rfs/sys"
# Docker mounts the cgroup hierarchies read-only; the broker reads its memory limit there
# (cgroup v1 memory controller, where the host has one).
if [[ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]]; then
    mount -t tmpfs -o nosuid,nodev,noexec,mode=0755 tmpfs "$rfs/sys/fs/cgroup"
    mkdir "$rfs/sys/fs/cgroup/memory"
    mount -t cgroup -o ro,nosuid,nodev,noexec,memory cgroup "$rfs/sys/fs/cgroup/memory"
fi
mount -t tmpfs -o nosuid,mode=0755 tmpfs "$rfs/dev"
for dev in null zero full random urandom; do
    touch "$rfs/dev/$dev"
    mount --bind "/dev/$dev" "$rfs/dev/$dev"
done
env=()
while [[ $1 != -- ]]; do env+=("$1"); shift; done
shift
exec env -i "${env[@]}" "$(command -v chroot)" --userspec="$userspec" "$rfs" "$@"
EOF

CONTAINER_PID=""
LOG=""
# start_container NAME: `docker start`; sets CONTAINER_PID (PID 1 inside, seen from the host).
start_container() {
    LOG="$WORK/$1.log"
    # With CGROUP set (docker run --memory), the container starts inside that cgroup.
    bash -c '[[ -z $0 ]] || echo $$ >"$0/cgroup.procs"; exec "$@"' "${CGROUP:-}" \
        unshare --pid --fork --kill-child --mount --uts --propagation private \
        bash "$WORK/init.sh" "$RFS" "$IMG_USER" "${CENV[@]}" -- "${IMG_ENTRYPOINT[@]}" >"$LOG" 2>&1 </dev/null &
    UNSHARE_PID=$!
    CONTAINER_PID=""
    local deadline=$((SECONDS + 10))
    while [[ -z "$CONTAINER_PID" ]] && ((SECONDS < deadline)); do
        CONTAINER_PID="$(pgrep -P "$UNSHARE_PID" || true)"
        [[ -n "$CONTAINER_PID" ]] || sleep 0.05
    done
}

# wait_ready: true once the log says so; false if the container exits or READY_TIMEOUT passes.
wait_ready() {
    local deadline=$((SECONDS + READY_TIMEOUT))
    until grep -q "ready to accept connections" "$LOG" 2>/dev/null; do
        kill -0 "$UNSHARE_PID" 2>/dev/null || return 1
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# healthcheck: the Dockerfile's HEALTHCHECK command, run like Docker runs it (docker exec: the
# container's namespaces, root, user and environment) under its --timeout.
healthcheck() {
    local ns=()
    if [[ -n "$CONTAINER_PID" ]] && kill -0 "$CONTAINER_PID" 2>/dev/null; then
        ns=(nsenter --target "$CONTAINER_PID" --mount --uts --pid --)
    fi
    timeout -k 2 "$IMG_HC_TIMEOUT" "${ns[@]}" env -i "${CENV[@]}" \
        chroot --userspec="$IMG_USER" "$RFS" "${IMG_HEALTHCHECK[@]}" >>"$WORK/healthcheck.log" 2>&1
}

client() {
    AMQP_HOST=127.0.0.1 AMQP_PORT="${CLIENT_PORT:-$AMQP_PORT}" AMQP_USER="$USER_NAME" AMQP_PASS="$USER_PASS" \
        TEST_TIMEOUT=30 timeout -k 5 40 "$PYTHON" "$HERE/python/_rootfs_client.py" "$@" \
        >>"$WORK/client.log" 2>&1 </dev/null
}

# docker_stop: SIGTERM to PID 1, SIGKILL after STOP_GRACE; true if it exited 0 in time.
docker_stop() {
    local rc=0 deadline=$((SECONDS + STOP_GRACE))
    STOP_RC=""
    [[ -n "$UNSHARE_PID" ]] || return 1
    kill -TERM "$CONTAINER_PID" 2>/dev/null || true
    while kill -0 "$UNSHARE_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$UNSHARE_PID" 2>/dev/null; then
        log "still running ${STOP_GRACE}s after SIGTERM; SIGKILL"
        kill -KILL "$UNSHARE_PID" 2>/dev/null || true
        wait "$UNSHARE_PID" 2>/dev/null || true
        UNSHARE_PID=""
        return 1
    fi
    wait "$UNSHARE_PID" || rc=$?
    UNSHARE_PID=""
    STOP_RC=$rc
    return "$rc"
}

# --- 3. The binary in the rootfs -----------------------------------------------------------
if version="$(env -i "${CENV[@]}" chroot --userspec="$IMG_USER" "$RFS" "${IMG_ENTRYPOINT[@]}" --version 2>&1)"; then
    pass "'${IMG_ENTRYPOINT[*]} --version' runs in the rootfs as $IMG_USER ($version)"
else
    fail "the binary does not run in the rootfs: $version"
fi

# --- 4. First run: health, clients, docker stop ------------------------------------------------
QUEUE="rootfs-check"
BODY="persistent message $RANDOM$RANDOM"
start_container first
if wait_ready; then
    uid_line="$(grep '^Uid:' "/proc/$CONTAINER_PID/status" | awk '{print $2 ":" $3 ":" $4 ":" $5}')"
    ns_pid="$(grep '^NSpid:' "/proc/$CONTAINER_PID/status" | awk '{print $NF}')"
    if [[ "$uid_line" == "$IMG_UID:$IMG_UID:$IMG_UID:$IMG_UID" && "$ns_pid" == 1 ]]; then
        pass "warren is ready as PID 1 of its namespace, uid $IMG_UID (AMQP port $AMQP_PORT)"
    else
        fail "warren runs with uids $uid_line as PID $ns_pid, expected $IMG_UID and 1"
    fi
else
    fail "warren did not become ready within ${READY_TIMEOUT}s" "$LOG"
fi

if healthcheck; then
    pass "HEALTHCHECK command succeeds inside the container"
else
    fail "HEALTHCHECK command failed" "$WORK/healthcheck.log"
fi

if client publish "$QUEUE" "$BODY"; then
    pass "pika from the host: persistent message confirmed on durable queue $QUEUE as $USER_NAME"
else
    fail "pika publish" "$WORK/client.log"
fi

if CLIENT_PORT="$TLS_PORT" client tls "$RFS/etc/warren/tls/server.pem"; then
    pass "AMQPS from the host with the mounted certificate and key (port $TLS_PORT)"
else
    fail "AMQPS" "$WORK/client.log"
fi

http_ok=1
client http "http://127.0.0.1:$HTTP_PORT/api/overview" api || http_ok=0
client http "http://127.0.0.1:$HTTP_PORT/" ui || http_ok=0
client http "http://127.0.0.1:$METRICS_PORT/metrics" metrics || http_ok=0
if [[ $http_ok == 1 ]]; then
    pass "management API, web UI and metrics answer on the config file's ports"
else
    fail "management API / web UI / metrics" "$WORK/client.log"
fi

stop_start=$SECONDS
if docker_stop; then
    pass "SIGTERM to PID 1: exited 0 in $((SECONDS - stop_start))s"
else
    fail "SIGTERM to PID 1: exit status ${STOP_RC:-none (killed)}" "$LOG"
fi

# With nothing listening, the same command must report unhealthy, or it proves nothing.
if healthcheck; then
    fail "HEALTHCHECK command succeeds with warren stopped"
else
    pass "HEALTHCHECK command fails with warren stopped"
fi

# --- 5. Restart on the same data dir (the volume) ----------------------------------------------
start_container second
if wait_ready && client get "$QUEUE" "$BODY"; then
    pass "after a restart on the same data dir the durable queue still holds the message"
else
    fail "message lost across a restart" "$WORK/client.log"
fi
if [[ -n "$UNSHARE_PID" ]] && ! docker_stop; then
    fail "SIGTERM after the restart: exit status ${STOP_RC:-none (killed)}" "$LOG"
fi

# --- 6. A data dir the user cannot write (e.g. a root-owned bind mount) -------------------------
mv "$RFS$DATA_DIR" "$RFS$DATA_DIR.used"
mkdir -m 0755 "$RFS$DATA_DIR"   # root:root
start_container unwritable
deadline=$((SECONDS + READY_TIMEOUT))
while kill -0 "$UNSHARE_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
if kill -0 "$UNSHARE_PID" 2>/dev/null; then
    fail "warren still running ${READY_TIMEOUT}s after starting on an unwritable data dir" "$LOG"
else
    rc=0
    wait "$UNSHARE_PID" || rc=$?
    UNSHARE_PID=""
    if [[ $rc != 0 ]] && grep -q "$DATA_DIR" "$LOG" && grep -qi "permission denied" "$LOG"; then
        pass "unwritable data dir: exit status $rc, $(grep -i 'permission denied' "$LOG" | head -1 | cut -c1-160)"
    else
        fail "unwritable data dir: exit status $rc without an error naming $DATA_DIR" "$LOG"
    fi
fi

# --- 7. docker run --memory 256m: the memory watermark is 40% of the limit, not of the host --------
rm -rf "${RFS:?}$DATA_DIR"
mv "$RFS$DATA_DIR.used" "$RFS$DATA_DIR"
CGROUP_ROOT=/sys/fs/cgroup/memory
if [[ -w "$CGROUP_ROOT" && -f "$CGROUP_ROOT/memory.limit_in_bytes" ]]; then
    CGROUP="$CGROUP_ROOT/warren-rootfs-$$"
    mkdir -p "$CGROUP"
    echo $((256 * 1024 * 1024)) >"$CGROUP/memory.limit_in_bytes"
    start_container memory-limit
    # 0.4 of 256 MiB.
    if wait_ready && grep -q "limit_bytes=107374182 " "$LOG"; then
        pass "with a 256 MiB cgroup limit the memory watermark is 40% of it ($(grep -o 'limit_bytes=[0-9]*' "$LOG"))"
    else
        fail "memory watermark under a 256 MiB cgroup limit: $(grep -o 'limit_bytes=[0-9]*' "$LOG" || echo 'not logged')" "$LOG"
    fi
    docker_stop || fail "SIGTERM under the memory limit: exit status ${STOP_RC:-none (killed)}" "$LOG"
    rmdir "$CGROUP" 2>/dev/null || true
    CGROUP=""
else
    log "SKIP memory-limit check: no writable cgroup v1 memory hierarchy at $CGROUP_ROOT"
fi

echo "rootfs: $PASSED/$((PASSED + FAILED)) passed"
((FAILED == 0))
