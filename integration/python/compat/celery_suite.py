#!/usr/bin/env python3
"""A real Celery worker (celery_app.py, solo pool, rpc:// results) against the broker.

Starts `celery -A celery_app worker` as a subprocess against AMQP_HOST:AMQP_PORT, then runs task
round trips through it: a result, an exception, retries, a group, a large argument, and remote
control (broadcast ping through the pidbox fanout exchange). The worker is always stopped at the
end (SIGTERM, then SIGKILL).
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

import _compat as c

LABEL = "python/celery"
HERE = os.path.dirname(os.path.abspath(__file__))
QUEUE = c.name("celery")
BROKER = f"amqp://{c.USER}:{c.PASSWORD}@{c.HOST}:{c.PORT}//"
os.environ["CELERY_BROKER_URL"] = BROKER
os.environ["CELERY_QUEUE"] = QUEUE

from celery import group  # noqa: E402
from celery.exceptions import TimeoutError as CeleryTimeout  # noqa: E402

import celery_app as tasks  # noqa: E402

WORKER_NAME = f"compat-{c.RUN_ID}@localhost"
LOG = tempfile.NamedTemporaryFile(prefix="celery-worker-", suffix=".log", delete=False)
worker = None


def start_worker():
    global worker
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=solo", "--loglevel=INFO",
         "-n", WORKER_NAME, "--without-gossip", "--without-mingle", "-Q", QUEUE],
        cwd=HERE, stdout=LOG, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=HERE))


def worker_log():
    with open(LOG.name, errors="replace") as f:
        return f.read()


def stop_worker():
    if worker is None or worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(15)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(5)


def case_auth_failure():
    from celery import Celery
    import amqp.exceptions as ae

    bad = Celery("bad")
    # An explicit URL: CELERY_BROKER_URL in the environment would override broker=.
    with bad.connection_for_write(f"amqp://{c.USER}:definitely-wrong@{c.HOST}:{c.PORT}//") as conn:
        try:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=10)
        except ae.AccessRefused:
            return
        except Exception as e:  # kombu may wrap it as OperationalError
            c.expect("ACCESS_REFUSED" in str(e) or "403" in str(e), f"unexpected auth error {e!r}")
            return
    raise AssertionError("connection with a wrong password succeeded")


def case_worker_ready():
    start_worker()
    deadline = time.monotonic() + 25
    while "ready." not in worker_log():
        if worker.poll() is not None:
            raise AssertionError(f"worker exited with {worker.returncode}:\n{worker_log()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"worker not ready after 25s:\n{worker_log()[-3000:]}")
        time.sleep(0.1)


def case_remote_control_ping():
    replies = tasks.app.control.ping(destination=[WORKER_NAME], timeout=3)
    c.expect(any(WORKER_NAME in r for r in replies), f"no ping reply from {WORKER_NAME}: {replies!r}")


def case_task_round_trip():
    c.expect_eq(tasks.add.delay(2, 3).get(timeout=20), 5, "add(2, 3)")
    c.expect_eq(tasks.add.apply_async((40, 2), priority=3, expires=60).get(timeout=20), 42, "add(40, 2)")


def case_task_exception():
    result = tasks.fail.delay("boom")
    try:
        result.get(timeout=20)
    except ValueError as e:
        c.expect_eq(str(e), "boom", "propagated exception message")
        c.expect_eq(result.state, "FAILURE", "task state")
        return
    except CeleryTimeout:
        raise AssertionError("no result for the failing task") from None
    raise AssertionError("failing task did not raise")


def case_task_retry():
    c.expect_eq(tasks.flaky.delay(3).get(timeout=20), 3, "attempts before success")


def case_group():
    results = group(tasks.add.s(i, i) for i in range(10))().get(timeout=30)
    c.expect_eq(results, [2 * i for i in range(10)], "group results")


def case_large_argument():
    payload = "x" * (1024 * 1024 - 5) + "-tail"
    got = tasks.echo.delay(payload).get(timeout=20)
    c.expect_eq(got["len"], len(payload), "payload length seen by the worker")
    c.expect_eq(got["tail"], payload[-16:], "payload tail seen by the worker")


def case_worker_shutdown():
    stop_worker()
    c.expect_eq(worker.returncode, 0, "worker exit status after SIGTERM")
    log = worker_log()
    for bad in ("CRITICAL", "Unrecoverable error", "Connection to broker lost", "Cannot connect"):
        c.expect(bad not in log, f"worker log has {bad!r}:\n{log[-3000:]}")


CASES = [
    ("auth_failure", case_auth_failure),
    ("worker_ready", case_worker_ready),
    ("remote_control_ping", case_remote_control_ping),
    ("task_round_trip", case_task_round_trip),
    ("task_exception", case_task_exception),
    ("task_retry", case_task_retry),
    ("group", case_group),
    ("large_argument", case_large_argument),
    ("worker_shutdown", case_worker_shutdown),
]

if __name__ == "__main__":
    import atexit

    atexit.register(stop_worker)
    try:
        c.run_suite(LABEL, CASES, threaded=False)
    finally:
        stop_worker()
