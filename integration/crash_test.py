#!/usr/bin/env python3
"""Crash test: SIGKILL the broker while publishers with confirms are running, restart it on the
same data dir, and check that nothing confirmed was lost and nothing was delivered twice as new.

    integration/crash_test.py [--bin target/release/warren] [--rounds 6] [--seed N]
    integration/crash_test.py --external 127.0.0.1:5672      # no kill: checks the script itself

Each crash round starts the broker (release binary, free port, its own data dir), runs several
publisher threads (each a pika BlockingConnection in confirm mode, so basic_publish returns only
once the broker acked it) sending persistent messages with sequential ids to a durable queue,
SIGKILLs the broker after a seeded random delay, restarts it on the same data dir and consumes
everything back with manual acks. Rounds vary: some reuse the previous round's data dir (so
leftovers of earlier rounds, including messages delivered and requeued, must be recovered again),
some start fresh; some run a consumer during the publish phase, one kills the broker again while
it recovers, one kills it while a consumer is acking. A last round leaves deliveries unacked at
kill time and checks they come back with redelivered=true.

A ledger of every id follows it through publishes, deliveries and acks, and fails the round when:
  - a confirmed id that was never acked is missing after the restart (lost message);
  - an id comes back with redelivered=false after it had already been delivered (a duplicate
    from a single delivery), or an id acked before the kill comes back. Both are only warnings
    when the earlier delivery / ack happened less than --grace seconds before the kill (the
    broker may not have recorded it yet);
  - an id nobody published arrives, a body or its properties are corrupted, the same id arrives
    twice in one drain, or one publisher's messages arrive out of order;
  - a publish is nacked or fails before the kill, the broker does not come back within
    READY_TIMEOUT, exits by itself, or logs a panic;
  - an exclusive queue or a non-durable queue comes back after the restart.
A message flagged redelivered=true that the client never saw is reported, not failed.

Prints one line per round and the summary line "crash/kill9: N/M rounds passed"; exits non-zero
on any failure. Every wait is bounded; a watchdog (TEST_TIMEOUT, default 600 s) ends the process.
"""

import argparse
import faulthandler
import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pika
import pika.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
READY_TIMEOUT = float(os.environ.get("READY_TIMEOUT", "30"))
TIMEOUT = float(os.environ.get("TEST_TIMEOUT", "600"))
USER = os.environ.get("AMQP_USER", "guest")
PASSWORD = os.environ.get("AMQP_PASS", "guest")
# Connection-level trouble that a kill explains.
CONN_ERRORS = (pika.exceptions.AMQPError, OSError, EOFError)


class RoundFailure(AssertionError):
    pass


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------------------------
# message bodies: "<id>|<n>|" + n deterministic bytes, so corruption is detectable
# --------------------------------------------------------------------------------------------


def make_body(mid, n):
    seed = hashlib.sha256(mid.encode()).digest()
    pad = (seed * (n // len(seed) + 1))[:n]
    return f"{mid}|{n}|".encode() + pad


def parse_body(body):
    """Returns the id, or raises RoundFailure when the body does not match its own header."""
    try:
        mid, n, _ = body.split(b"|", 2)
        mid, n = mid.decode(), int(n)
    except ValueError as e:
        raise RoundFailure(f"unparseable body {body[:60]!r}") from e
    if body != make_body(mid, n):
        raise RoundFailure(f"corrupted body for id {mid} ({len(body)} bytes)")
    return mid


def body_size(rng):
    r = rng.random()
    if r < 0.005:
        return rng.randint(131_072, 400_000)  # past frame_max: several body frames
    if r < 0.05:
        return rng.randint(1_000, 20_000)
    return rng.randint(0, 200)


def seq_key(mid):
    """("round.thread", seq) for ordering checks."""
    stream, _, seq = mid.rpartition(".")
    return stream, int(seq)


# --------------------------------------------------------------------------------------------
# the broker
# --------------------------------------------------------------------------------------------


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    """The release binary on a fixed port; `data_dir` may change between rounds."""

    def __init__(self, binary, port, log_dir, extra_args):
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = port
        self.log_dir = log_dir
        self.extra_args = extra_args
        self.proc = None
        self.log_path = None
        self.starts = 0
        self.log_notes = []  # ERROR / WARN lines seen in warren's logs, not yet printed
        self.noted = set()

    def start(self, data_dir, wait=True):
        self.starts += 1
        self.log_path = os.path.join(self.log_dir, f"warren-{self.starts:02d}.log")
        self.log_file = open(self.log_path, "wb")
        cmd = [self.binary, "--bind", self.host, "--port", str(self.port), "--data-dir", data_dir,
               "--http-port", "0", "--metrics-port", "0"]
        self.proc = subprocess.Popen(
            cmd + self.extra_args,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        if wait:
            self.wait_ready()

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join("    " + line for line in self.log_text().splitlines()[-n:])

    def wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RoundFailure(
                    f"warren exited with {self.proc.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            if "ready to accept connections" in self.log_text():
                try:
                    socket.create_connection((self.host, self.port), timeout=1).close()
                    return
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise RoundFailure(f"warren not ready after {READY_TIMEOUT}s:\n" + self.log_tail())
            time.sleep(0.05)

    def kill(self):
        """SIGKILL; returns the monotonic time of the kill."""
        t = time.monotonic()
        if self.proc.poll() is not None:
            raise RoundFailure(
                f"warren had already exited ({self.proc.returncode}) before the kill:\n"
                + self.log_tail()
            )
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log_file.close()
        self.check_log()
        return t

    def check_log(self):
        text = self.log_text()
        if "panicked" in text:
            raise RoundFailure("warren logged a panic:\n" + self.log_tail(60))
        for line in text.splitlines():
            note = f"{os.path.basename(self.log_path)}: {line.strip()[:300]}"
            if (" ERROR " in line or " WARN " in line) and note not in self.noted:
                self.noted.add(note)
                self.log_notes.append(note)

    def stop(self):
        """SIGTERM (bounded), then SIGKILL if needed."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log_file.close()


class External:
    """An already running broker (e.g. RabbitMQ): 'kill' only stops the clients."""

    def __init__(self, hostport):
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.starts = 0  # never killed: no instance is ever recorded as dead

    def start(self, data_dir, wait=True):
        pass

    def kill(self):
        return time.monotonic()

    def check_log(self):
        pass

    log_notes = []

    def stop(self):
        pass


# --------------------------------------------------------------------------------------------
# the ledger
# --------------------------------------------------------------------------------------------


class Ledger:
    """Everything the clients know about the ids sent to one queue (one data-dir lineage)."""

    def __init__(self, grace):
        self.grace = grace
        self.attempted = set()
        self.confirmed = set()
        self.acked = {}  # id -> time the ack was sent
        self.maybe_acked = set()  # acks sent while the broker was being killed
        self.delivered = {}  # id -> time of the last delivery the client saw
        self.kills = []  # monotonic times of kills (and of "kills" in external mode)
        self.killed_at = {}  # broker instance (start number) -> time it was killed
        self.lock = threading.Lock()
        self.failures = []
        self.warnings = []
        self.info = {"unseen_redelivered": 0}

    def fail(self, msg):
        with self.lock:
            self.failures.append(msg)

    def warn(self, msg):
        with self.lock:
            self.warnings.append(msg)

    def near_kill(self, t):
        """Whether a kill happened after t but less than `grace` seconds after it."""
        return any(t <= k < t + self.grace for k in self.kills)

    def ago(self, t):
        """When t was, relative to the first kill after it."""
        after = [k for k in self.kills if k >= t]
        if not after:
            return "with no kill since"
        return f"{min(after) - t:.3f}s before a kill"

    def killed_since(self, t):
        return any(k >= t for k in self.kills)

    def record_kill(self, broker):
        """Kills the broker and records when; returns the time. Recorded before the signal, so
        a client event racing with the kill counts as after it."""
        t = time.monotonic()
        with self.lock:
            self.kills.append(t)
            if broker.starts:
                self.killed_at[broker.starts] = t
        broker.kill()
        return t

    def on_delivery(self, mid, redelivered, where, instance):
        """A delivery the client saw on a connection to broker instance `instance`. One read from
        a socket buffer after that instance was killed happened, as far as the broker knows, at
        the kill."""
        now = time.monotonic()
        with self.lock:
            k = self.killed_at.get(instance)
            if k is not None and now > k:
                now = k
            if mid not in self.attempted:
                self.failures.append(f"{where}: id {mid} was never published")
                return
            before = self.delivered.get(mid)
            acked = self.acked.get(mid)
            self.delivered[mid] = now
        if acked is not None:
            # An ack that reached the broker before a kill may be forgotten only if it was sent
            # just before the kill; without a kill in between it must never come back.
            if not self.killed_since(acked):
                self.fail(f"{where}: id {mid} was acked and is delivered again")
            elif not self.near_kill(acked):
                self.fail(f"{where}: id {mid} was acked ({self.ago(acked)}) and came back")
            else:
                self.warn(f"{where}: id {mid} acked just before the kill came back")
        if not redelivered and before is not None:
            if self.near_kill(before):
                self.warn(
                    f"{where}: id {mid} delivered just before the kill came back with "
                    "redelivered=false"
                )
            else:
                self.fail(
                    f"{where}: id {mid} was delivered before ({self.ago(before)}) and came back "
                    "with redelivered=false"
                )
        if redelivered and before is None:
            with self.lock:
                self.info["unseen_redelivered"] += 1

    def on_ack(self, mid, instance):
        """An ack sent to broker instance `instance`. The kill time is taken just before the
        signal, so an ack sent after it may still have reached the live broker (the crash test
        once failed on exactly that: acks sent in that window, taken by the broker, reported as
        lost messages). Such a message may come back or not; neither is an error."""
        now = time.monotonic()
        with self.lock:
            k = self.killed_at.get(instance)
            if k is None or now <= k:
                self.acked[mid] = now
            else:
                self.maybe_acked.add(mid)

    def expected_present(self):
        with self.lock:
            return {
                m for m in self.confirmed if m not in self.acked and m not in self.maybe_acked
            }


# --------------------------------------------------------------------------------------------
# clients
# --------------------------------------------------------------------------------------------


def params(broker, attempts=1):
    return pika.ConnectionParameters(
        host=broker.host,
        port=broker.port,
        credentials=pika.PlainCredentials(USER, PASSWORD),
        connection_attempts=attempts,
        retry_delay=0.5,
        socket_timeout=5,
        stack_timeout=10,
        blocked_connection_timeout=30,
        heartbeat=0,
    )


def connect(broker, attempts=3):
    return pika.BlockingConnection(params(broker, attempts))


def close_quietly(conn):
    try:
        if conn.is_open:
            conn.close()
    except CONN_ERRORS:
        pass


class Publisher(threading.Thread):
    """Publishes ids "<stream>.<seq>" with confirms until stopped or the connection dies."""

    def __init__(self, broker, ledger, queue, stream, seed, stop, started, max_msgs):
        super().__init__(name=f"publisher-{stream}", daemon=True)
        self.broker, self.ledger, self.queue, self.stream = broker, ledger, queue, stream
        self.rng = random.Random(seed)
        self.stop, self.started, self.max_msgs = stop, started, max_msgs
        self.confirmed = 0
        self.unknown = None  # the id in flight when the connection died
        self.error = None  # an error not explained by a kill
        self.died = None  # the connection error, when there was one
        self.connected = False

    def run(self):
        conn = None
        try:
            conn = connect(self.broker)
            ch = conn.channel()
            ch.confirm_delivery()
            self.connected = True
            self.started.release()
            for seq in range(self.max_msgs):
                if self.stop.is_set():
                    break
                mid = f"{self.stream}.{seq}"
                body = make_body(mid, body_size(self.rng))
                with self.ledger.lock:
                    self.ledger.attempted.add(mid)
                self.unknown = mid
                try:
                    ch.basic_publish(
                        exchange="",
                        routing_key=self.queue,
                        body=body,
                        properties=pika.BasicProperties(delivery_mode=2, message_id=mid),
                        mandatory=True,
                    )
                except (pika.exceptions.NackError, pika.exceptions.UnroutableError) as e:
                    self.error = f"publish {mid} refused: {e!r}"
                    return
                self.unknown = None
                with self.ledger.lock:
                    self.ledger.confirmed.add(mid)
                self.confirmed += 1
            close_quietly(conn)
        except CONN_ERRORS as e:
            self.died = e
        except Exception as e:  # noqa: BLE001 - reported by the round
            self.error = f"{type(e).__name__}: {e}"
        finally:
            if not self.connected:
                self.started.release()


class Consumer(threading.Thread):
    """Consumes with manual acks during a phase that ends with a kill; acks a fraction, holds
    the rest (up to `hold_max`) unacked."""

    def __init__(self, broker, ledger, queue, where, seed, ack_frac, prefetch, hold_max, stop):
        super().__init__(name=f"consumer-{where}", daemon=True)
        self.broker, self.ledger, self.queue, self.where = broker, ledger, queue, where
        self.rng = random.Random(seed)
        self.ack_frac, self.prefetch, self.hold_max, self.stop = ack_frac, prefetch, hold_max, stop
        self.received = 0
        self.held = 0
        self.error = None
        self.conn = None
        self.instance = 0

    def run(self):
        try:
            self.instance = self.broker.starts
            self.conn = connect(self.broker)
            ch = self.conn.channel()
            ch.basic_qos(prefetch_count=self.prefetch)
            for method, props, body in ch.consume(self.queue, inactivity_timeout=0.05):
                if self.stop.is_set():
                    break
                if method is None:
                    continue
                mid = parse_body(body)
                check_props(mid, props, self.where)
                self.ledger.on_delivery(mid, method.redelivered, self.where, self.instance)
                self.received += 1
                if self.held < self.hold_max and self.rng.random() >= self.ack_frac:
                    self.held += 1
                    continue
                # Recorded before sending: pika's basic_ack writes the frame and then flushes,
                # and the flush can raise once the broker is killed although the broker had
                # already read (and stored) the ack. Recorded after, such an ack looked like a
                # lost message.
                self.ledger.on_ack(mid, self.instance)
                ch.basic_ack(method.delivery_tag)
        except CONN_ERRORS:
            pass
        except Exception as e:  # noqa: BLE001 - reported by the round
            self.error = f"{type(e).__name__}: {e}"
        finally:
            if self.conn is not None:
                close_quietly(self.conn)


def check_props(mid, props, where):
    if props.delivery_mode != 2 or props.message_id != mid:
        raise RoundFailure(
            f"{where}: id {mid} has properties delivery_mode={props.delivery_mode} "
            f"message_id={props.message_id!r}"
        )


def drain(broker, ledger, queue, where, rng, hold_frac=0.0, hold_max=0, deadline_s=90):
    """Consumes every ready message with manual acks (holding a fraction unacked, requeued when
    the connection closes) and checks the ledger. Returns ({id: redelivered}, held)."""
    instance = broker.starts
    conn = connect(broker)
    try:
        ch = conn.channel()
        probe = conn.channel()
        ch.basic_qos(prefetch_count=1000)
        seen, held = {}, 0
        last = {}
        deadline = time.monotonic() + deadline_s
        for method, props, body in ch.consume(queue, inactivity_timeout=0.5):
            if time.monotonic() > deadline:
                raise RoundFailure(f"{where}: drain still running after {deadline_s}s")
            if method is None:
                if probe.queue_declare(queue, passive=True).method.message_count == 0:
                    break
                continue
            mid = parse_body(body)
            check_props(mid, props, where)
            if mid in seen:
                ledger.fail(f"{where}: id {mid} delivered twice in one drain")
            seen[mid] = method.redelivered
            stream, seq = seq_key(mid)
            if stream in last and seq < last[stream]:
                ledger.fail(f"{where}: {mid} arrived after {stream}.{last[stream]} (out of order)")
            last[stream] = max(seq, last.get(stream, -1))
            ledger.on_delivery(mid, method.redelivered, where, instance)
            if held < hold_max and rng.random() < hold_frac:
                held += 1
                continue
            # Before sending, for the reason given in Consumer.run.
            ledger.on_ack(mid, instance)
            ch.basic_ack(method.delivery_tag)
        ch.cancel()
        missing = sorted(ledger.expected_present() - seen.keys(), key=seq_key)
        if missing:
            ledger.fail(
                f"{where}: {len(missing)} confirmed ids missing after the restart, e.g. "
                + ", ".join(missing[:10])
            )
        return seen, held
    finally:
        close_quietly(conn)


def queue_exists(broker, queue):
    conn = connect(broker)
    try:
        ch = conn.channel()
        try:
            ch.queue_declare(queue, passive=True)
            return True
        except pika.exceptions.ChannelClosedByBroker as e:
            if e.reply_code == 404:
                return False
            raise
    finally:
        close_quietly(conn)


def require_queue(broker, ledger, queue):
    if not queue_exists(broker, queue):
        raise RoundFailure(
            f"durable queue {queue} did not survive the restart "
            f"({len(ledger.expected_present())} confirmed messages in it are lost)"
        )


# --------------------------------------------------------------------------------------------
# rounds
# --------------------------------------------------------------------------------------------


class Lineage:
    """A data dir and the ledger of its durable queue, shared by consecutive rounds."""

    def __init__(self, work, name, grace, external):
        self.name = name
        self.data_dir = os.path.join(work, f"data-{name}")
        os.makedirs(self.data_dir, exist_ok=True)
        self.ledger = Ledger(grace)
        suffix = f".{uuid.uuid4().hex[:8]}" if external else ""
        self.queue = f"crash.q{suffix}"
        self.excl = f"crash.exclusive{suffix}"
        self.transient = f"crash.transient{suffix}"


def run_round(ctx, number, lineage, plan, rng):
    """One crash round; returns a one-line description. Raises RoundFailure."""
    b, ledger = ctx.broker, lineage.ledger
    n_fail, n_warn = len(ledger.failures), len(ledger.warnings)
    n_unseen = ledger.info["unseen_redelivered"]
    if ctx.running is not lineage:
        if ctx.running is not None:
            b.stop()
        b.start(lineage.data_dir)
        ctx.running = lineage

    setup = connect(b)
    ch = setup.channel()
    ch.queue_declare(lineage.queue, durable=True)
    # Must not come back: an exclusive durable queue whose owner is connected at the kill, and a
    # non-durable queue, each holding a persistent message.
    ch.queue_declare(lineage.excl, durable=True, exclusive=True)
    ch.queue_declare(lineage.transient, durable=False)
    ch.confirm_delivery()
    for q in (lineage.excl, lineage.transient):
        mid = f"r{number}.x.0"
        with ledger.lock:
            ledger.attempted.add(mid)
        ch.basic_publish("", q, make_body(mid, 8), pika.BasicProperties(delivery_mode=2))
    queued_before = ch.queue_declare(lineage.queue, passive=True).method.message_count

    stop = threading.Event()
    started = threading.Semaphore(0)
    pubs = [
        Publisher(b, ledger, lineage.queue, f"r{number}.t{t}", rng.random(), stop, started, 10**7)
        for t in range(plan.get("publishers", ctx.publishers))
    ]
    cons = None
    if plan.get("consumer"):
        cons = Consumer(
            b, ledger, lineage.queue, f"round {number} consumer", rng.random(),
            ack_frac=0.8, prefetch=300, hold_max=100, stop=stop,
        )
    for p in pubs:
        p.start()
    for _ in pubs:
        if not started.acquire(timeout=15):
            raise RoundFailure("a publisher did not connect within 15s")
    if cons:
        cons.start()
    delay = plan["kill_after"]
    time.sleep(delay)
    ledger.record_kill(b)
    if ctx.external:
        stop.set()
    for p in pubs:
        p.join(timeout=30)
        if p.is_alive():
            raise RoundFailure(f"{p.name} still running 30s after the kill")
    if cons:
        cons.join(timeout=30)
        if cons.is_alive():
            raise RoundFailure("consumer still running 30s after the kill")
        if cons.error:
            ledger.fail(f"consumer: {cons.error}")
    if ctx.external:
        close_quietly(setup)  # the exclusive queue goes with its owner
    for p in pubs:
        if not p.connected:
            ledger.fail(f"{p.name}: never connected: {p.died!r}")
        elif p.error:
            ledger.fail(f"{p.name}: {p.error}")
        elif ctx.external and p.died is not None:
            ledger.fail(f"{p.name}: connection died without a kill: {p.died!r}")
        elif not ctx.external and p.died is None:
            ledger.fail(f"{p.name}: finished without noticing the kill")
    confirmed = sum(p.confirmed for p in pubs)
    unknown = sum(p.unknown is not None for p in pubs)

    extra = []
    if plan.get("kill_in_recovery") and not ctx.external:
        b.start(lineage.data_dir, wait=False)
        d = rng.uniform(0.0, 0.3)
        time.sleep(d)
        ledger.record_kill(b)  # fails the round if warren exited by itself
        extra.append(f"killed again {d:.3f}s into the restart")
    b.start(lineage.data_dir)

    if plan.get("kill_in_drain"):
        stop2 = threading.Event()
        c2 = Consumer(
            b, ledger, lineage.queue, f"round {number} acking consumer", rng.random(),
            ack_frac=1.0, prefetch=200, hold_max=0, stop=stop2,
        )
        c2.start()
        d = rng.uniform(0.05, 0.5)
        time.sleep(d)
        ledger.record_kill(b)
        if ctx.external:
            stop2.set()
        c2.join(timeout=30)
        if c2.is_alive():
            raise RoundFailure("acking consumer still running 30s after the kill")
        if c2.error:
            ledger.fail(f"acking consumer: {c2.error}")
        extra.append(f"killed again {d:.3f}s into a drain ({c2.received} received)")
        b.start(lineage.data_dir)

    if not ctx.external:
        if queue_exists(b, lineage.excl):
            ledger.fail(f"exclusive queue {lineage.excl} came back after the kill")
        if queue_exists(b, lineage.transient):
            ledger.fail(f"non-durable queue {lineage.transient} came back after the kill")
    else:
        if queue_exists(b, lineage.excl):
            ledger.fail(f"exclusive queue {lineage.excl} outlived its connection")
        c = connect(b)
        c.channel().queue_delete(lineage.transient)
        close_quietly(c)
    if not ctx.external:
        close_quietly(setup)

    require_queue(b, ledger, lineage.queue)
    hold = plan.get("hold_frac", 0.0)
    seen, held = drain(
        b, ledger, lineage.queue, f"round {number} drain", rng, hold_frac=hold, hold_max=150
    )
    received, redelivered = len(seen), sum(seen.values())
    b.check_log()
    for note in b.log_notes:
        log(f"    log: {note}")
    b.log_notes.clear()
    desc = (
        f"kill after {delay:.3f}s; {len(pubs)} publishers, {confirmed} confirmed, "
        f"{unknown} in flight; {queued_before} queued before; "
        + (f"consumer got {cons.received}; " if cons else "")
        + ("; ".join(extra) + "; " if extra else "")
        + f"drain {received} ({redelivered} redelivered, {held} left unacked)"
    )
    unseen = ledger.info["unseen_redelivered"] - n_unseen
    if unseen:
        desc += f"; {unseen} flagged redelivered that no client saw"
    new_fail = ledger.failures[n_fail:]
    new_warn = ledger.warnings[n_warn:]
    for w in new_warn[:5]:
        log(f"    warn: {w}")
    if len(new_warn) > 5:
        log(f"    warn: ... {len(new_warn) - 5} more")
    if new_warn:
        desc += f"; {len(new_warn)} warnings"
    if new_fail:
        for f in new_fail[:15]:
            log(f"    FAIL: {f}")
        raise RoundFailure(f"{len(new_fail)} failures; " + desc)
    return desc


def run_unacked_round(ctx, number, lineage, rng):
    """Deliveries outstanding at the kill come back with redelivered=true, undelivered ones
    with redelivered=false, acked ones not at all."""
    b, ledger = ctx.broker, lineage.ledger
    n_fail = len(ledger.failures)
    if ctx.running is not lineage:
        if ctx.running is not None:
            b.stop()
        b.start(lineage.data_dir)
        ctx.running = lineage
    total, n_get, n_ack = 300, 100, 20
    conn = connect(b)
    ch = conn.channel()
    ch.queue_declare(lineage.queue, durable=True)
    ch.confirm_delivery()
    ids = [f"r{number}.u.{i}" for i in range(total)]
    for mid in ids:
        with ledger.lock:
            ledger.attempted.add(mid)
        ch.basic_publish(
            "", lineage.queue, make_body(mid, rng.randint(0, 100)),
            pika.BasicProperties(delivery_mode=2, message_id=mid), mandatory=True,
        )
        with ledger.lock:
            ledger.confirmed.add(mid)
    leftovers = ch.queue_declare(lineage.queue, passive=True).method.message_count - total

    # basic.get, so exactly these messages are delivered (a consumer would get more pushed).
    got = []
    for _ in range(n_get):
        method, props, body = ch.basic_get(lineage.queue, auto_ack=False)
        if method is None:
            raise RoundFailure(f"queue empty after {len(got)} basic.get")
        mid = parse_body(body)
        check_props(mid, props, f"round {number} pre-kill")
        ledger.on_delivery(mid, method.redelivered, f"round {number} pre-kill", b.starts)
        got.append((mid, method.delivery_tag))
    mine = [(m, t) for m, t in got if m.startswith(f"r{number}.u.")]
    for mid, tag in mine[:n_ack]:
        ch.basic_ack(tag)
        ledger.on_ack(mid, b.starts)
    # Let the acks reach the broker and give it a moment, longer than --grace.
    conn.process_data_events(time_limit=0.2)
    time.sleep(ctx.grace + 0.3)
    delivered_unacked = {m for m, _ in got} - set(ledger.acked)
    ledger.record_kill(b)
    if ctx.external:
        close_quietly(conn)  # requeues the unacked deliveries
    b.start(lineage.data_dir)

    require_queue(b, ledger, lineage.queue)
    back, _ = drain(b, ledger, lineage.queue, f"round {number} drain", rng)
    wrong_flag = sorted((m for m in delivered_unacked if back.get(m) is False), key=seq_key)
    lost = sorted(m for m in delivered_unacked if m not in back)
    acked_back = sorted(m for m, _ in mine[:n_ack] if m in back)
    got_ids = {g for g, _ in got}
    flagged = [m for m in ids if m not in got_ids and back.get(m) is True]
    if wrong_flag:
        ledger.fail(
            f"{len(wrong_flag)} unacked deliveries came back with redelivered=false, "
            f"e.g. {wrong_flag[:3]}"
        )
    if lost:
        ledger.fail(f"{len(lost)} unacked deliveries did not come back, e.g. {lost[:3]}")
    if flagged:
        ledger.warn(
            f"{len(flagged)} never-delivered messages came back with redelivered=true, "
            f"e.g. {flagged[:3]}"
        )
        log(f"    warn: {ledger.warnings[-1]}")
    b.check_log()
    new_fail = ledger.failures[n_fail:]
    desc = (
        f"{total} published, {len(got)} delivered by basic.get ({len(mine[:n_ack])} acked) "
        f"before the kill, {leftovers} older messages queued; back {len(back)}: "
        f"{sum(back.values())} redelivered, {len(acked_back)} acked ones returned"
    )
    if new_fail:
        for f in new_fail[:15]:
            log(f"    FAIL: {f}")
        raise RoundFailure(f"{len(new_fail)} failures; " + desc)
    return desc


class Ctx:
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get("WARREN_BIN") or os.path.join(ROOT, "target", "release", "warren"))
    ap.add_argument("--rounds", type=int, default=6, help="crash rounds (plus one unacked round)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--grace", type=float, default=1.0,
                    help="seconds before a kill in which a delivery/ack may be forgotten")
    ap.add_argument("--min-delay", type=float, default=0.05)
    ap.add_argument("--max-delay", type=float, default=2.0)
    ap.add_argument("--work", default=None, help="work dir (data dirs, logs); kept on failure")
    ap.add_argument("--external", default=None, metavar="HOST:PORT",
                    help="use a running broker; publishers are stopped instead of killing it")
    ap.add_argument("--broker-arg", action="append", default=[],
                    help="extra argument for warren, e.g. --broker-arg=--no-fsync")
    args = ap.parse_args()
    faulthandler.dump_traceback_later(TIMEOUT, exit=True)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    work = args.work or tempfile.mkdtemp(prefix="warren-crash.")
    os.makedirs(work, exist_ok=True)
    label = "crash/kill9" if not args.external else "crash/no-kill"

    ctx = Ctx()
    ctx.external = bool(args.external)
    ctx.publishers = args.publishers
    ctx.grace = args.grace
    ctx.running = None
    if args.external:
        ctx.broker = External(args.external)
        where = f"external broker {args.external} (no kill)"
    else:
        if not os.access(args.bin, os.X_OK):
            log(f"no executable at {args.bin}")
            print(f"{label}: FAILED, no binary", flush=True)
            return 1
        ctx.broker = Broker(args.bin, free_port(), work, args.broker_arg)
        where = f"{args.bin} on port {ctx.broker.port}"
    log(f"[crash] seed {seed} (replay with --seed {seed}); {where}; work dir {work}")

    # Lineages: A reused for three rounds, B for two, then fresh ones; the last lineage also
    # gets the unacked round. Round plans vary the kill point and what else happens.
    plans = []
    names = ["A", "A", "A", "B", "B"] + [f"F{i}" for i in range(max(0, args.rounds - 5))]
    for i in range(args.rounds):
        plan = {"kill_after": rng.uniform(args.min_delay, args.max_delay)}
        if i % 3 == 1:
            plan["consumer"] = True
        if i == 2:
            plan["kill_in_recovery"] = True
        if i == 4:
            plan["kill_in_drain"] = True
        if i % 2 == 0:
            plan["hold_frac"] = 0.1  # leave some delivered messages for the next round
        plans.append((names[i], plan))
    lineages = {}
    passed = failed = 0
    for i, (name, plan) in enumerate(plans, start=1):
        lin = lineages.get(name) or lineages.setdefault(
            name, Lineage(work, name, args.grace, ctx.external)
        )
        reused = "reused" if any(n == name for n, _ in plans[: i - 1]) else "fresh"
        try:
            desc = run_round(ctx, i, lin, plan, rng)
            passed += 1
            log(f"[crash] round {i} PASS (data {name}, {reused}): {desc}")
        except (RoundFailure, *CONN_ERRORS) as e:
            failed += 1
            log(f"[crash] round {i} FAIL (data {name}, {reused}): {e}")
            ctx.running = None
            ctx.broker.stop()
    last = plans[-1][0] if plans else "U"
    lin = lineages.get(last) or Lineage(work, "U", args.grace, ctx.external)
    i = len(plans) + 1
    try:
        desc = run_unacked_round(ctx, i, lin, rng)
        passed += 1
        log(f"[crash] round {i} PASS (unacked at kill, data {lin.name}, reused): {desc}")
    except (RoundFailure, *CONN_ERRORS) as e:
        failed += 1
        log(f"[crash] round {i} FAIL (unacked at kill, data {lin.name}): {e}")
    ctx.broker.stop()
    if ctx.external:
        c = connect(ctx.broker)
        ch = c.channel()
        for lin in lineages.values():
            ch.queue_delete(lin.queue)
        close_quietly(c)
    warnings = sum(len(lin.ledger.warnings) for lin in lineages.values())
    unseen = sum(lin.ledger.info["unseen_redelivered"] for lin in lineages.values())
    total = passed + failed
    extra = f" ({warnings} warnings, {unseen} redelivered never seen by a client; seed {seed})"
    if failed:
        log(f"[crash] work dir kept: {work}")
        print(f"{label}: {passed}/{total} rounds passed, {failed} FAILED{extra}", flush=True)
        return 1
    if not args.work:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    print(f"{label}: {passed}/{total} rounds passed{extra}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
