"""Shared helpers for the self-checking pika tutorial scripts.

Every script runs its producer and consumer sides on separate threads, each
with its own BlockingConnection (pika connections are not thread-safe), and
exits non-zero on failure. A watchdog ends the process if it ever hangs.
"""

import faulthandler
import os
import sys
import threading
import time
import uuid

import pika

HOST = os.environ.get("AMQP_HOST", "127.0.0.1")
PORT = int(os.environ.get("AMQP_PORT", "5672"))
USER = os.environ.get("AMQP_USER", "guest")
PASSWORD = os.environ.get("AMQP_PASS", "guest")
# Seconds before the watchdog kills a script that did not finish.
TIMEOUT = float(os.environ.get("TEST_TIMEOUT", "30"))

# Names carry a per-run suffix so concurrent runs against one shared broker
# never see each other's queues and exchanges.
RUN_ID = uuid.uuid4().hex[:8]


def name(base):
    """Tutorial name `base`, made unique to this run."""
    return f"{base}.{RUN_ID}"


def params():
    return pika.ConnectionParameters(
        host=HOST,
        port=PORT,
        credentials=pika.PlainCredentials(USER, PASSWORD),
        connection_attempts=3,
        retry_delay=0.5,
        socket_timeout=5,
        blocked_connection_timeout=10,
    )


def connect():
    return pika.BlockingConnection(params())


def start_watchdog(script):
    """Dump every thread's stack and exit(1) if the script is still running after TIMEOUT."""
    faulthandler.dump_traceback_later(TIMEOUT, exit=True)
    print(f"[{script}] broker {HOST}:{PORT}, run id {RUN_ID}", flush=True)


class Worker(threading.Thread):
    """A thread whose exception is re-raised by join_checked()."""

    def __init__(self, target, *args, name=None):
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self._args = args
        self.error = None
        self.result = None

    def run(self):
        try:
            self.result = self._target_fn(*self._args)
        except BaseException as e:  # noqa: BLE001 - reported by join_checked
            self.error = e

    def join_checked(self, timeout=None):
        self.join(timeout if timeout is not None else TIMEOUT)
        if self.is_alive():
            raise AssertionError(f"thread {self.name} did not finish")
        if self.error is not None:
            raise AssertionError(f"thread {self.name} failed: {self.error!r}") from self.error
        return self.result


def consume_until(connection, channel, done, deadline_s=None):
    """Run the connection's I/O loop until done() is true; fail on timeout."""
    deadline = time.monotonic() + (deadline_s or TIMEOUT - 5)
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for messages")
        connection.process_data_events(time_limit=0.1)


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def main(script, body):
    """Run body(); print PASS/FAIL and exit with the matching status."""
    start_watchdog(script)
    try:
        body()
    except Exception as e:  # noqa: BLE001 - any failure fails the script
        import traceback

        traceback.print_exc()
        print(f"FAIL {script}: {e}", flush=True)
        sys.exit(1)
    faulthandler.cancel_dump_traceback_later()
    print(f"PASS {script}", flush=True)
    sys.exit(0)
