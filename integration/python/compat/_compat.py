"""Shared harness for the Python client compatibility suites.

Each suite (pika_blocking.py, pika_asyncio.py, aio_pika_suite.py, kombu_suite.py,
celery_suite.py) is a list of named cases run in order against AMQP_HOST:AMQP_PORT. Every case
has its own timeout (CASE_TIMEOUT, default 30 s) and the whole process a watchdog
(SUITE_TIMEOUT, default 240 s). The suite prints PASS/FAIL per case, then exactly one summary line
`python/<client>: N/M passed` and exits 0 only if every case passed.
"""

import asyncio
import datetime
import decimal
import faulthandler
import hashlib
import os
import signal
import sys
import threading
import time
import traceback
import uuid

HOST = os.environ.get("AMQP_HOST", "127.0.0.1")
PORT = int(os.environ.get("AMQP_PORT", "5672"))
USER = os.environ.get("AMQP_USER", "guest")
PASSWORD = os.environ.get("AMQP_PASS", "guest")
CASE_TIMEOUT = float(os.environ.get("CASE_TIMEOUT", "30"))
SUITE_TIMEOUT = float(os.environ.get("SUITE_TIMEOUT", "240"))

# Per-run suffix: concurrent runs against one shared broker never collide.
RUN_ID = uuid.uuid4().hex[:8]

# 16 MiB: above every client's default frame size, so the body spans many frames.
LARGE_SIZE = 16 * 1024 * 1024

# The basic properties every suite sets (where the client can express them). user_id must be the
# authenticated user or RabbitMQ refuses the publish; expiration is long enough never to fire.
PROPS = {
    "content_type": "application/x-warren-test",
    "content_encoding": "identity",
    "delivery_mode": 2,
    "priority": 7,
    "correlation_id": "corr-42",
    "reply_to": "reply.queue",
    "expiration": "600000",
    "message_id": "msg-42",
    "timestamp": 1700000000,
    "type": "compat.test",
    "user_id": USER,
    "app_id": "warren-compat",
    "cluster_id": "cluster-7",
}

TS = datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc)


def name(base):
    """`base` made unique to this run."""
    return f"compat.{base}.{RUN_ID}"


def large_body():
    """A 16 MiB body that is not all one byte (so a shifted or truncated frame shows)."""
    block = hashlib.sha256(RUN_ID.encode()).digest() * 32  # 1 KiB
    return (block * (LARGE_SIZE // len(block)))[: LARGE_SIZE - 7] + b"TAIL-42"


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def expect_eq(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def expect_headers(got, want, what="headers"):
    """Every key of `want` is in `got` with an equal value (and, for numbers, an equal type)."""
    if got is None:
        raise AssertionError(f"{what}: none received, want {want!r}")
    bad = []
    for key, value in want.items():
        if key not in got:
            bad.append(f"{key!r} missing")
        elif got[key] != value or not isinstance(got[key], type(value)):
            bad.append(f"{key!r}: got {got[key]!r} ({type(got[key]).__name__}), want {value!r} ({type(value).__name__})")
    if bad:
        raise AssertionError(f"{what} differ: " + "; ".join(bad))


def check_x_death(headers, queue, exchange, routing_key, reason="rejected"):
    """RabbitMQ's x-death layout for the first dead-lettering of a message."""
    expect(headers is not None, "dead-lettered message has no headers")
    deaths = headers.get("x-death")
    expect(isinstance(deaths, list) and len(deaths) == 1, f"x-death should be a 1-element array, got {deaths!r}")
    d = deaths[0]
    expect_eq(_s(d.get("reason")), reason, "x-death reason")
    expect_eq(_s(d.get("queue")), queue, "x-death queue")
    expect_eq(_s(d.get("exchange")), exchange, "x-death exchange")
    expect_eq([_s(k) for k in d.get("routing-keys", [])], [routing_key], "x-death routing-keys")
    expect_eq(d.get("count"), 1, "x-death count")
    expect("time" in d, f"x-death has no time: {d!r}")
    expect_eq(_s(headers.get("x-first-death-reason")), reason, "x-first-death-reason")
    expect_eq(_s(headers.get("x-first-death-queue")), queue, "x-first-death-queue")
    expect_eq(_s(headers.get("x-first-death-exchange")), exchange, "x-first-death-exchange")


def _s(v):
    return v.decode() if isinstance(v, (bytes, bytearray)) else v


def _start(label):
    faulthandler.dump_traceback_later(SUITE_TIMEOUT, exit=True)
    print(f"[{label}] broker {HOST}:{PORT}, run id {RUN_ID}", flush=True)


def _finish(label, results):
    faulthandler.cancel_dump_traceback_later()
    passed = sum(1 for ok in results if ok)
    print(f"{label}: {passed}/{len(results)} passed", flush=True)
    sys.stdout.flush()
    # os._exit: a case that timed out may have left a thread blocked in a socket read.
    os._exit(0 if passed == len(results) else 1)


def _report(case, ok, started, err=None):
    took = time.monotonic() - started
    if ok:
        print(f"PASS {case} ({took:.1f}s)", flush=True)
    else:
        print(f"FAIL {case} ({took:.1f}s): {err}", flush=True)


class CaseTimeout(Exception):
    pass


def _alarm(_signum, _frame):
    raise CaseTimeout(f"timed out after {CASE_TIMEOUT:.0f}s")


def run_suite(label, cases, threaded=True):
    """Runs each (name, fn) with CASE_TIMEOUT; prints the summary; exits.

    threaded: each case in its own thread (a hung case is abandoned); otherwise in the main thread
    with SIGALRM as the timeout, for clients that are not thread-safe (Celery's rpc:// backend).
    """
    _start(label)
    results = []
    for case, fn in cases:
        started = time.monotonic()
        box = {}
        if not threaded:
            signal.signal(signal.SIGALRM, _alarm)
            signal.setitimer(signal.ITIMER_REAL, CASE_TIMEOUT)
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported
                traceback.print_exc()
                _report(case, False, started, f"{type(e).__name__}: {e}")
                results.append(False)
            else:
                _report(case, True, started)
                results.append(True)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            continue

        def target(fn=fn, box=box):
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported below
                box["err"] = e
                box["tb"] = traceback.format_exc()

        t = threading.Thread(target=target, name=case, daemon=True)
        t.start()
        t.join(CASE_TIMEOUT)
        if t.is_alive():
            _report(case, False, started, f"timed out after {CASE_TIMEOUT:.0f}s")
            results.append(False)
        elif "err" in box:
            print(box["tb"], end="", flush=True)
            _report(case, False, started, f"{type(box['err']).__name__}: {box['err']}")
            results.append(False)
        else:
            _report(case, True, started)
            results.append(True)
    _finish(label, results)


def run_async_suite(label, cases):
    """Runs each (name, coroutine function) with asyncio.wait_for(CASE_TIMEOUT); summary; exits."""
    _start(label)

    async def all_cases():
        results = []
        for case, fn in cases:
            started = time.monotonic()
            try:
                await asyncio.wait_for(fn(), CASE_TIMEOUT)
            except asyncio.TimeoutError:
                _report(case, False, started, f"timed out after {CASE_TIMEOUT:.0f}s")
                results.append(False)
            except BaseException as e:  # noqa: BLE001 - reported
                traceback.print_exc()
                _report(case, False, started, f"{type(e).__name__}: {e}")
                results.append(False)
            else:
                _report(case, True, started)
                results.append(True)
        return results

    results = asyncio.run(all_cases())
    _finish(label, results)


def wait_until(pred, what, timeout=10.0, step=0.02, pump=None):
    """Polls pred() (calling pump() between polls, e.g. a blocking client's event loop)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if pump is not None:
            pump(step)
        else:
            time.sleep(step)


__all__ = [
    "HOST", "PORT", "USER", "PASSWORD", "RUN_ID", "PROPS", "TS", "LARGE_SIZE", "name", "large_body",
    "expect", "expect_eq", "expect_headers", "check_x_death", "run_suite", "run_async_suite",
    "wait_until", "decimal",
]
