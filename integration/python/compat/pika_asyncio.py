#!/usr/bin/env python3
"""pika's AsyncioConnection adapter (callback API) against the broker: the cases of issue 7.

The callbacks are turned into futures by the small `Chan` wrapper below; the client calls made
are pika's ordinary asynchronous channel API.
"""

import asyncio
import decimal

import pika
import pika.exceptions as pe
from pika.adapters.asyncio_connection import AsyncioConnection

import _compat as c

LABEL = "python/pika-asyncio"


def params(password=c.PASSWORD):
    return pika.ConnectionParameters(
        host=c.HOST, port=c.PORT, credentials=pika.PlainCredentials(c.USER, password),
        connection_attempts=1, socket_timeout=10,
    )


async def connect(password=c.PASSWORD):
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def on_open(conn):
        if not fut.done():
            fut.set_result(conn)

    def on_error(_conn, err):
        if not fut.done():
            fut.set_exception(err if isinstance(err, BaseException) else pe.AMQPConnectionError(err))

    def on_close(_conn, err):
        if not fut.done():
            fut.set_exception(err)

    AsyncioConnection(params(password), on_open_callback=on_open, on_open_error_callback=on_error,
                      on_close_callback=on_close, custom_ioloop=loop)
    return await fut


async def close(conn):
    if conn.is_closed:
        return
    fut = asyncio.get_running_loop().create_future()
    conn.add_on_close_callback(lambda *_: fut.done() or fut.set_result(None))
    conn.close()
    await fut


class Chan:
    """A pika Channel whose callback methods are awaited; a broker close fails what is pending."""

    def __init__(self, ch):
        self.ch = ch
        self.pending = set()
        self.closed = None
        self.deliveries = asyncio.Queue()
        self.acks = {}  # delivery tag -> "ack"/"nack"
        self.returns = []
        self.publish_seq = 0
        ch.add_on_close_callback(self._on_close)
        ch.add_on_return_callback(lambda _ch, m, p, b: self.returns.append((m, p, b)))

    @classmethod
    async def open(cls, conn):
        fut = asyncio.get_running_loop().create_future()
        conn.channel(on_open_callback=fut.set_result)
        return cls(await fut)

    def _on_close(self, _ch, reason):
        self.closed = reason
        for fut in self.pending:
            if not fut.done():
                fut.set_exception(reason)

    async def call(self, method, *args, **kwargs):
        """Calls a channel method that takes `callback=` and awaits it (or the channel's close)."""
        fut = asyncio.get_running_loop().create_future()
        self.pending.add(fut)
        getattr(self.ch, method)(*args, callback=lambda frame: fut.done() or fut.set_result(frame), **kwargs)
        try:
            return await fut
        finally:
            self.pending.discard(fut)

    async def confirm(self):
        def on_ack_nack(frame):
            m = frame.method
            kind = "ack" if isinstance(m, pika.spec.Basic.Ack) else "nack"
            if m.multiple:
                for tag in range(1, m.delivery_tag + 1):
                    self.acks.setdefault(tag, kind)
            else:
                self.acks[m.delivery_tag] = kind

        fut = asyncio.get_running_loop().create_future()
        self.ch.confirm_delivery(ack_nack_callback=on_ack_nack, callback=lambda f: fut.set_result(f))
        await fut

    def publish(self, exchange, key, body, props=None, mandatory=False):
        self.ch.basic_publish(exchange, key, body, properties=props, mandatory=mandatory)
        self.publish_seq += 1
        return self.publish_seq

    async def consume(self, queue, auto_ack=False):
        fut = asyncio.get_running_loop().create_future()
        tag = self.ch.basic_consume(
            queue, lambda _ch, m, p, b: self.deliveries.put_nowait((m, p, b)), auto_ack=auto_ack,
            callback=lambda f: fut.set_result(f))
        await fut
        return tag

    async def next(self, timeout=10):
        return await asyncio.wait_for(self.deliveries.get(), timeout)

    async def depth(self, queue):
        frame = await self.call("queue_declare", queue, passive=True)
        return frame.method.message_count


async def wait_for(pred, what, timeout=10):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def case_connect():
    conn = await connect()
    caps = conn.server_properties.get("capabilities", {})
    for cap in ("publisher_confirms", "basic.nack", "consumer_cancel_notify", "authentication_failure_close"):
        c.expect(caps.get(cap) is True, f"server capability {cap} is {caps.get(cap)!r}")
    await close(conn)


async def case_auth_failure():
    try:
        conn = await connect(password="definitely-wrong")
    except pe.ProbableAuthenticationError as e:
        c.expect("ACCESS_REFUSED" in str(e) or "403" in str(e), f"auth error without 403 ACCESS_REFUSED: {e!r}")
        return
    await close(conn)
    raise AssertionError("connection with a wrong password succeeded")


async def case_declare():
    conn = await connect()
    try:
        ch = await Chan.open(conn)
        ex, q = c.name("declare.ex"), c.name("declare.q")
        await ch.call("exchange_declare", ex, exchange_type="direct")
        ok = await ch.call("queue_declare", q)
        c.expect_eq(ok.method.queue, q, "declare-ok queue")
        await ch.call("queue_bind", q, ex, routing_key="k")
        ch.publish(ex, "k", b"routed")
        ch.publish(ex, "other", b"dropped")
        await wait_for(lambda: _eq(ch.depth(q), 1), "1 routed message")
        try:
            await ch.call("queue_declare", c.name("missing"), passive=True)
            raise AssertionError("passive declare of a missing queue succeeded")
        except pe.ChannelClosedByBroker as e:
            c.expect_eq(e.reply_code, 404, "passive declare of missing queue reply code")
        ch = await Chan.open(conn)
        await ch.call("queue_delete", q)
        await ch.call("exchange_delete", ex)
    finally:
        await close(conn)


async def _eq(coro, want):
    return await coro == want


async def case_publish_confirms():
    conn = await connect()
    try:
        ch = await Chan.open(conn)
        q = c.name("confirms.q")
        await ch.call("queue_declare", q)
        await ch.confirm()
        for i in range(50):
            ch.publish("", q, f"m{i}".encode(), pika.BasicProperties(delivery_mode=2))
        await wait_for(lambda: _true(len(ch.acks) == 50), "50 confirms")
        c.expect(all(v == "ack" for v in ch.acks.values()), f"nacked publishes: {ch.acks}")
        tag = ch.publish("", c.name("nowhere"), b"x", mandatory=True)
        await wait_for(lambda: _true(tag in ch.acks), "confirm of the unroutable publish")
        c.expect_eq(len(ch.returns), 1, "basic.return for an unroutable mandatory publish")
        c.expect_eq(ch.returns[0][0].reply_code, 312, "basic.return reply code")
        c.expect_eq(await ch.depth(q), 50, "confirmed messages in queue")
        await ch.call("queue_delete", q)
    finally:
        await close(conn)


async def _true(v):
    return v


async def case_consume_prefetch_ack():
    conn = await connect()
    try:
        ch = await Chan.open(conn)
        q = c.name("prefetch.q")
        await ch.call("queue_declare", q)
        for i in range(10):
            ch.publish("", q, f"m{i}".encode())
        await ch.call("basic_qos", prefetch_count=3)
        await ch.consume(q)
        await wait_for(lambda: _true(ch.deliveries.qsize() >= 3), "3 deliveries")
        await asyncio.sleep(0.5)
        c.expect_eq(ch.deliveries.qsize(), 3, "deliveries in flight with prefetch 3 and no acks")
        bodies = []
        for _ in range(10):
            m, _p, b = await ch.next()
            bodies.append(b)
            ch.ch.basic_ack(m.delivery_tag)
        c.expect_eq(bodies, [f"m{i}".encode() for i in range(10)], "bodies in order")
        await ch.call("queue_delete", q)
    finally:
        await close(conn)


async def case_nack_dead_letter():
    conn = await connect()
    try:
        ch = await Chan.open(conn)
        dlx, dlq, q = c.name("dlx"), c.name("dlq"), c.name("work")
        await ch.call("exchange_declare", dlx, exchange_type="direct")
        await ch.call("queue_declare", dlq)
        await ch.call("queue_bind", dlq, dlx, routing_key="dead")
        await ch.call("queue_declare", q, arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
        ch.publish("", q, b"doomed", pika.BasicProperties(headers={"orig": "kept"}))
        await ch.consume(q)
        m, _p, _b = await ch.next()
        ch.ch.basic_nack(m.delivery_tag, requeue=False)
        ch2 = await Chan.open(conn)
        await ch2.consume(dlq, auto_ack=True)
        _m, p, b = await ch2.next()
        c.expect_eq(b, b"doomed", "dead-lettered body")
        c.expect_eq(p.headers.get("orig"), "kept", "original header after dead-lettering")
        c.check_x_death(p.headers, queue=q, exchange="", routing_key=q)
        for x in (q, dlq):
            await ch2.call("queue_delete", x)
        await ch2.call("exchange_delete", dlx)
    finally:
        await close(conn)


async def case_transactions():
    conn = await connect()
    try:
        ch = await Chan.open(conn)
        q = c.name("tx.q")
        await ch.call("queue_declare", q)
        await ch.call("tx_select")
        ch.publish("", q, b"rolled back")
        await ch.call("tx_rollback")
        ch.publish("", q, b"committed")
        c.expect_eq(await ch.depth(q), 0, "depth before commit")
        await ch.call("tx_commit")
        c.expect_eq(await ch.depth(q), 1, "depth after commit")
        await ch.consume(q)
        m, _p, b = await ch.next()
        c.expect_eq(b, b"committed", "committed body")
        ch.ch.basic_ack(m.delivery_tag)
        await ch.call("tx_commit")
        c.expect_eq(await ch.depth(q), 0, "depth after committed ack")
        await ch.call("queue_delete", q)
    finally:
        await close(conn)


async def case_large_message():
    conn = await connect()
    try:
        ch = await Chan.open(conn)
        q = c.name("large.q")
        await ch.call("queue_declare", q)
        await ch.confirm()
        body = c.large_body()
        tag = ch.publish("", q, body)
        await wait_for(lambda: _true(ch.acks.get(tag) == "ack"), "confirm of the 16 MiB publish", timeout=20)
        await ch.consume(q)
        m, _p, b = await ch.next(timeout=20)
        c.expect_eq(len(b), len(body), "large body length")
        c.expect(b == body, "large body content differs")
        ch.ch.basic_ack(m.delivery_tag)
        await ch.call("queue_delete", q)
    finally:
        await close(conn)


HEADERS = {
    "str": "héllo", "bytes": b"\x00\xff", "true": True, "false": False, "int32": -7, "int64": 2**40,
    "decimal": decimal.Decimal("-12.345"), "timestamp": c.TS, "table": {"a": {"b": [1, "two"]}},
    "array": [None, "x", 3], "void": None,
}


async def case_properties_and_headers():
    conn = await connect()
    try:
        ch = await Chan.open(conn)
        q = c.name("props.q")
        await ch.call("queue_declare", q)
        ch.publish("", q, b"props", pika.BasicProperties(headers=HEADERS, **c.PROPS))
        await ch.consume(q, auto_ack=True)
        _m, p, b = await ch.next()
        c.expect_eq(b, b"props", "body")
        for k, v in c.PROPS.items():
            c.expect_eq(getattr(p, k), v, f"property {k}")
        c.expect_headers(p.headers, HEADERS)
        await ch.call("queue_delete", q)
    finally:
        await close(conn)


CASES = [
    ("connect", case_connect),
    ("auth_failure", case_auth_failure),
    ("declare", case_declare),
    ("publish_confirms", case_publish_confirms),
    ("consume_prefetch_ack", case_consume_prefetch_ack),
    ("nack_dead_letter", case_nack_dead_letter),
    ("transactions", case_transactions),
    ("large_message", case_large_message),
    ("properties_and_headers", case_properties_and_headers),
]

if __name__ == "__main__":
    c.run_async_suite(LABEL, CASES)
