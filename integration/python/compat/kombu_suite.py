#!/usr/bin/env python3
"""kombu (py-amqp transport) against the broker: the compatibility cases of issue 7."""

import decimal
import socket
import time

import amqp.exceptions as ae
from kombu import Connection, Consumer, Exchange, Producer, Queue

import _compat as c

LABEL = "python/kombu"


def connection(password=c.PASSWORD, **transport_options):
    return Connection(
        f"amqp://{c.USER}:{password}@{c.HOST}:{c.PORT}//", connect_timeout=10,
        transport_options=transport_options)


def drain(conn, until, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        try:
            conn.drain_events(timeout=0.1)
        except socket.timeout:
            pass


def depth(channel, queue):
    return channel.queue_declare(queue, passive=True).message_count


def case_connect():
    with connection() as conn:
        conn.connect()
        caps = conn.connection.server_capabilities
        for cap in ("publisher_confirms", "basic.nack", "consumer_cancel_notify", "authentication_failure_close"):
            c.expect(caps.get(cap) is True, f"server capability {cap} is {caps.get(cap)!r}")
        c.expect(conn.connected, "not connected")


def case_auth_failure():
    with connection(password="definitely-wrong") as conn:
        try:
            conn.connect()
        except ae.AccessRefused as e:
            c.expect_eq(e.reply_code, 403, "auth failure reply code")
            return
    raise AssertionError("connection with a wrong password succeeded")


def case_declare():
    with connection() as conn:
        ch = conn.channel()
        ex = Exchange(c.name("declare.ex"), type="topic", durable=False)
        q = Queue(c.name("declare.q"), exchange=ex, routing_key="a.#", durable=False,
                  queue_arguments={"x-max-length": 100})
        q(ch).declare()
        with Producer(ch, exchange=ex) as producer:
            producer.publish({"n": 1}, routing_key="a.b.c", serializer="json")
            producer.publish({"n": 2}, routing_key="b", serializer="json")
        c.wait_until(lambda: depth(ch, q.name) == 1, "1 routed message")
        msg = q(ch).get(no_ack=True)
        c.expect_eq(msg.payload, {"n": 1}, "routed payload")
        try:
            Queue(c.name("missing"))(conn.channel()).queue_declare(passive=True)
            raise AssertionError("passive declare of a missing queue succeeded")
        except ae.NotFound as e:
            c.expect_eq(e.reply_code, 404, "passive declare of a missing queue")
        ch = conn.channel()
        q(ch).delete()
        ex(ch).delete()


def case_publish_confirms():
    with connection(confirm_publish=True) as conn:
        ch = conn.channel()
        q = Queue(c.name("confirms.q"))
        q(ch).declare()
        returned = []
        producer = Producer(ch, on_return=lambda exc, exchange, routing_key, message: returned.append(routing_key))
        for i in range(50):
            producer.publish(f"m{i}", routing_key=q.name, delivery_mode=2, serializer="json")
        c.expect_eq(depth(ch, q.name), 50, "confirmed messages in queue")
        producer.publish("x", routing_key=c.name("nowhere"), mandatory=True, serializer="json")
        drain(conn, lambda: returned, "basic.return")
        c.expect_eq(returned, [c.name("nowhere")], "returned routing keys")
        q(ch).delete()


def case_consume_prefetch_ack():
    with connection() as conn:
        ch = conn.channel()
        q = Queue(c.name("prefetch.q"))
        q(ch).declare()
        with Producer(ch) as producer:
            for i in range(10):
                producer.publish(f"m{i}", routing_key=q.name, serializer="json")
        got = []
        consumer = Consumer(conn.channel(), [q], callbacks=[lambda body, msg: got.append(msg)], prefetch_count=3)
        with consumer:
            drain(conn, lambda: len(got) >= 3, "3 deliveries")
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=0.1)
                except socket.timeout:
                    pass
            c.expect_eq(len(got), 3, "deliveries in flight with prefetch 3 and no acks")
            acked = 0
            while acked < 10:
                drain(conn, lambda: len(got) > acked, f"delivery {acked}")
                got[acked].ack()
                acked += 1
        c.expect_eq([m.payload for m in got], [f"m{i}" for i in range(10)], "bodies in order")
        q(conn.channel()).delete()


def case_nack_dead_letter():
    with connection() as conn:
        ch = conn.channel()
        dlx = Exchange(c.name("dlx"), type="direct")
        dlq = Queue(c.name("dlq"), exchange=dlx, routing_key="dead")
        q = Queue(c.name("work"), queue_arguments={"x-dead-letter-exchange": dlx.name,
                                                    "x-dead-letter-routing-key": "dead"})
        dlq(ch).declare()
        q(ch).declare()
        with Producer(ch) as producer:
            producer.publish("doomed", routing_key=q.name, headers={"orig": "kept"}, serializer="json")
        c.wait_until(lambda: depth(ch, q.name) == 1, "message in the work queue")
        msg = q(ch).get(no_ack=False)
        msg.reject(requeue=False)
        box = []
        c.wait_until(lambda: box.append(dlq(ch).get(no_ack=True)) or box[-1] is not None, "dead-lettered message")
        dead = box[-1]
        c.expect_eq(dead.payload, "doomed", "dead-lettered payload")
        c.expect_eq(dead.headers.get("orig"), "kept", "original header after dead-lettering")
        c.check_x_death(dead.headers, queue=q.name, exchange="", routing_key=q.name)
        q(ch).delete()
        dlq(ch).delete()
        dlx(ch).delete()


def case_transactions():
    with connection() as conn:
        ch = conn.channel()
        q = Queue(c.name("tx.q"))
        q(ch).declare()
        ch.tx_select()
        producer = Producer(ch)
        producer.publish("rolled back", routing_key=q.name, serializer="json")
        ch.tx_rollback()
        producer.publish("committed", routing_key=q.name, serializer="json")
        c.expect_eq(depth(ch, q.name), 0, "depth before commit")
        ch.tx_commit()
        c.expect_eq(depth(ch, q.name), 1, "depth after commit")
        msg = q(ch).get(no_ack=False)
        c.expect_eq(msg.payload, "committed", "committed payload")
        msg.ack()
        ch.tx_commit()
        c.expect_eq(depth(ch, q.name), 0, "depth after committed ack")
        q(ch).delete()


def case_large_message():
    with connection(confirm_publish=True) as conn:
        ch = conn.channel()
        q = Queue(c.name("large.q"))
        q(ch).declare()
        body = c.large_body()
        Producer(ch).publish(body, routing_key=q.name, content_type="application/octet-stream",
                             content_encoding="binary")
        got = []
        with Consumer(conn.channel(), [q], callbacks=[lambda b, m: got.append(m)], accept=["application/octet-stream"]):
            drain(conn, lambda: got, "16 MiB delivery", timeout=20)
        c.expect_eq(len(got[0].body), len(body), "large body length")
        c.expect(got[0].body == body, "large body content differs")
        got[0].ack()
        q(conn.channel()).delete()


# py-amqp encodes S t I L(int64) d D T F A V (bytes go out as S; no 8/16-bit or float types).
HEADERS = {
    "str": "héllo", "true": True, "false": False, "int32": -70000, "int64": 2**40, "double": 2.5,
    "decimal": decimal.Decimal("3.14"), "timestamp": c.TS.replace(tzinfo=None),  # py-amqp decodes T naive
    "table": {"a": {"b": [1, "two"]}}, "array": [None, "x", 3, 0.5], "void": None,
}


def case_properties_and_headers():
    with connection() as conn:
        ch = conn.channel()
        q = Queue(c.name("props.q"))
        q(ch).declare()
        p = dict(c.PROPS)
        Producer(ch).publish(
            b"props", routing_key=q.name, headers=HEADERS, content_type=p["content_type"],
            content_encoding=p["content_encoding"], delivery_mode=p["delivery_mode"], priority=p["priority"],
            correlation_id=p["correlation_id"], reply_to=p["reply_to"], expiration=int(p["expiration"]) / 1000,
            message_id=p["message_id"], timestamp=p["timestamp"], type=p["type"], user_id=p["user_id"],
            app_id=p["app_id"], cluster_id=p["cluster_id"])
        box = []
        c.wait_until(lambda: box.append(q(ch).get(no_ack=True)) or box[-1] is not None, "message")
        msg = box[-1]
        c.expect_eq(msg.body, b"props", "body")
        props = dict(msg.properties)
        props["content_type"], props["content_encoding"] = msg.content_type, msg.content_encoding
        for k, v in p.items():
            c.expect_eq(props.get(k), v, f"property {k}")
        c.expect_headers(msg.headers, HEADERS)
        q(ch).delete()


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
    c.run_suite(LABEL, CASES)
