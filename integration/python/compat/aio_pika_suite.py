#!/usr/bin/env python3
"""aio-pika (on aiormq/pamqp) against the broker: the compatibility cases of issue 7."""

import asyncio
import decimal

import aio_pika
import aiormq.exceptions as ae
from aio_pika import DeliveryMode, ExchangeType, Message

import _compat as c

LABEL = "python/aio-pika"


def url(password=c.PASSWORD):
    return f"amqp://{c.USER}:{password}@{c.HOST}:{c.PORT}/"


async def connect(password=c.PASSWORD):
    return await aio_pika.connect(url(password), timeout=10)


async def depth(ch, queue):
    q = await ch.declare_queue(queue, passive=True)
    return q.declaration_result.message_count


async def case_connect():
    conn = await connect()
    async with conn:
        caps = conn.transport.connection.server_properties.get("capabilities", {})
        for cap in ("publisher_confirms", "basic.nack", "consumer_cancel_notify", "authentication_failure_close"):
            c.expect(caps.get(cap) is True, f"server capability {cap} is {caps.get(cap)!r}")


async def case_auth_failure():
    try:
        conn = await connect(password="definitely-wrong")
    except ae.ProbableAuthenticationError as e:
        c.expect("ACCESS_REFUSED" in str(e) or "403" in str(e), f"auth error without ACCESS_REFUSED: {e!r}")
        return
    await conn.close()
    raise AssertionError("connection with a wrong password succeeded")


async def case_declare():
    async with await connect() as conn:
        ch = await conn.channel()
        ex = await ch.declare_exchange(c.name("declare.ex"), ExchangeType.HEADERS)
        q = await ch.declare_queue(c.name("declare.q"), arguments={"x-message-ttl": 600000})
        await q.bind(ex, arguments={"x-match": "all", "kind": "compat"})
        await ex.publish(Message(b"routed", headers={"kind": "compat"}), routing_key="")
        await ex.publish(Message(b"dropped", headers={"kind": "other"}), routing_key="")
        msg = await q.get(timeout=5)
        c.expect_eq(msg.body, b"routed", "routed body")
        await msg.ack()
        c.expect_eq(await depth(ch, q.name), 0, "depth after the one routed message")
        try:
            await ch.declare_queue(c.name("missing"), passive=True)
            raise AssertionError("passive declare of a missing queue succeeded")
        except ae.ChannelNotFoundEntity:
            pass
        ch = await conn.channel()
        await ch.queue_delete(q.name)
        await ch.exchange_delete(ex.name)


async def case_publish_confirms():
    async with await connect() as conn:
        ch = await conn.channel(publisher_confirms=True, on_return_raises=True)
        q = await ch.declare_queue(c.name("confirms.q"))
        confirms = await asyncio.gather(*[
            ch.default_exchange.publish(Message(f"m{i}".encode(), delivery_mode=DeliveryMode.PERSISTENT), q.name)
            for i in range(50)])
        c.expect(all(isinstance(x, aiormq.spec.Basic.Ack) for x in confirms), f"not all acked: {confirms[:3]}")
        try:
            await ch.default_exchange.publish(Message(b"x"), c.name("nowhere"), mandatory=True)
            raise AssertionError("unroutable mandatory publish did not raise")
        except aio_pika.exceptions.DeliveryError as e:
            c.expect_eq(e.message.routing_key if e.message else None, c.name("nowhere"), "returned message routing key")
        c.expect_eq(await depth(ch, q.name), 50, "confirmed messages in queue")
        await q.delete(if_unused=False, if_empty=False)


async def case_consume_prefetch_ack():
    async with await connect() as conn:
        ch = await conn.channel()
        q = await ch.declare_queue(c.name("prefetch.q"))
        for i in range(10):
            await ch.default_exchange.publish(Message(f"m{i}".encode()), q.name)
        await ch.set_qos(prefetch_count=3)
        got = []
        await q.consume(lambda m: got.append(m))
        for _ in range(250):
            if len(got) >= 3:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        c.expect_eq(len(got), 3, "deliveries in flight with prefetch 3 and no acks")
        acked = 0
        while acked < 10:
            for _ in range(500):
                if len(got) > acked:
                    break
                await asyncio.sleep(0.02)
            await got[acked].ack()
            acked += 1
        c.expect_eq([m.body for m in got], [f"m{i}".encode() for i in range(10)], "bodies in order")
        await q.delete(if_unused=False, if_empty=False)


async def case_nack_dead_letter():
    async with await connect() as conn:
        ch = await conn.channel()
        dlx = await ch.declare_exchange(c.name("dlx"), ExchangeType.TOPIC)
        dlq = await ch.declare_queue(c.name("dlq"))
        await dlq.bind(dlx, "#")
        q = await ch.declare_queue(c.name("work"), arguments={"x-dead-letter-exchange": dlx.name})
        await ch.default_exchange.publish(Message(b"doomed", headers={"orig": "kept"}), q.name)
        msg = await q.get(timeout=5)
        await msg.nack(requeue=False)
        dead = None
        for _ in range(250):
            dead = await dlq.get(fail=False)
            if dead:
                break
            await asyncio.sleep(0.02)
        c.expect(dead is not None, "no dead-lettered message in the DLQ")
        c.expect_eq(dead.body, b"doomed", "dead-lettered body")
        c.expect_eq(dead.headers.get("orig"), "kept", "original header after dead-lettering")
        c.check_x_death(dead.headers, queue=q.name, exchange="", routing_key=q.name)
        await dead.ack()
        await q.delete(if_unused=False, if_empty=False)
        await dlq.delete(if_unused=False, if_empty=False)
        await dlx.delete()


async def case_transactions():
    async with await connect() as conn:
        ch = await conn.channel(publisher_confirms=False)
        q = await ch.declare_queue(c.name("tx.q"))
        tx = ch.transaction()
        await tx.select()
        await ch.default_exchange.publish(Message(b"rolled back"), q.name)
        await tx.rollback()
        tx = ch.transaction()
        await tx.select()
        await ch.default_exchange.publish(Message(b"committed"), q.name)
        c.expect_eq(await depth(ch, q.name), 0, "depth before commit")
        await tx.commit()
        c.expect_eq(await depth(ch, q.name), 1, "depth after commit")
        msg = await q.get(timeout=5)
        c.expect_eq(msg.body, b"committed", "committed body")
        await msg.ack()
        await q.delete(if_unused=False, if_empty=False)


async def case_large_message():
    async with await connect() as conn:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue(c.name("large.q"))
        body = c.large_body()
        await ch.default_exchange.publish(Message(body), q.name, timeout=20)
        got = asyncio.get_running_loop().create_future()
        await q.consume(lambda m: got.done() or got.set_result(m))
        msg = await asyncio.wait_for(got, 20)
        c.expect_eq(len(msg.body), len(body), "large body length")
        c.expect(msg.body == body, "large body content differs")
        await msg.ack()
        await q.delete(if_unused=False, if_empty=False)


# pamqp picks the smallest integer type, so these cover b s u I i l; plus f D S T F A x t V.
HEADERS = {
    "int8": -5, "int16": -300, "uint16": 40000, "int32": -70000, "uint32": 3000000000, "int64": -2**40,
    "float": 1.5, "decimal": decimal.Decimal("3.14"), "str": "héllo", "timestamp": c.TS,
    "table": {"a": {"b": [1, "two"]}}, "array": [None, "x", 3, 1.25], "bytes": bytearray(b"\x00\xff"),
    "true": True, "false": False, "void": None,
}

async def case_properties_and_headers():
    async with await connect() as conn:
        ch = await conn.channel()
        q = await ch.declare_queue(c.name("props.q"))
        p = dict(c.PROPS)
        msg = Message(
            b"props", headers=HEADERS, content_type=p["content_type"], content_encoding=p["content_encoding"],
            delivery_mode=DeliveryMode(p["delivery_mode"]), priority=p["priority"],
            correlation_id=p["correlation_id"], reply_to=p["reply_to"], expiration=int(p["expiration"]) / 1000,
            message_id=p["message_id"], timestamp=p["timestamp"], type=p["type"], user_id=p["user_id"],
            app_id=p["app_id"])
        await ch.default_exchange.publish(msg, q.name)
        got = await q.get(timeout=5)
        c.expect_eq(got.body, b"props", "body")
        for k, v in p.items():
            if k == "cluster_id":  # aio-pika's outgoing Message cannot set cluster_id
                continue
            have = getattr(got, k)
            if k == "timestamp":
                have = int(have.timestamp())
            elif k == "delivery_mode":
                have = int(have)
            elif k == "expiration":
                have = str(int(have * 1000))
            c.expect_eq(have, v, f"property {k}")
        want = HEADERS
        c.expect_headers(got.headers, want)
        await got.ack()
        await q.delete(if_unused=False, if_empty=False)


import aiormq  # noqa: E402  (used by the confirms case)

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
