#!/usr/bin/env python3
"""pika BlockingConnection against the broker: the compatibility cases of issue 7."""

import decimal
import time

import pika
import pika.exceptions as pe

import _compat as c

LABEL = "python/pika-blocking"


def params(password=c.PASSWORD):
    return pika.ConnectionParameters(
        host=c.HOST,
        port=c.PORT,
        credentials=pika.PlainCredentials(c.USER, password),
        connection_attempts=1,
        socket_timeout=10,
        blocked_connection_timeout=20,
        frame_max=131072,
    )


def connect():
    return pika.BlockingConnection(params())


def case_connect():
    conn = connect()
    try:
        props = conn._impl.server_properties
        caps = props.get("capabilities", {})
        for cap in ("publisher_confirms", "basic.nack", "consumer_cancel_notify", "exchange_exchange_bindings",
                    "connection.blocked", "authentication_failure_close", "per_consumer_qos", "direct_reply_to"):
            c.expect(caps.get(cap) is True, f"server capability {cap} is {caps.get(cap)!r}")
        c.expect(props.get("product"), "server_properties has no product")
        c.expect(conn.is_open, "connection not open")
    finally:
        conn.close()


def case_auth_failure():
    try:
        pika.BlockingConnection(params(password="definitely-wrong"))
    except pe.ProbableAuthenticationError as e:
        c.expect("ACCESS_REFUSED" in str(e) or "403" in str(e), f"auth error without 403 ACCESS_REFUSED: {e!r}")
        return
    raise AssertionError("connection with a wrong password succeeded")


def case_declare():
    conn = connect()
    try:
        ch = conn.channel()
        ex, q = c.name("declare.ex"), c.name("declare.q")
        ch.exchange_declare(ex, exchange_type="topic", durable=False, auto_delete=False)
        ok = ch.queue_declare(q, durable=False, arguments={"x-max-length": 1000})
        c.expect_eq(ok.method.queue, q, "declare-ok queue name")
        c.expect_eq(ok.method.message_count, 0, "declare-ok message count")
        ch.queue_bind(q, ex, routing_key="a.*.c")
        ch.exchange_declare(ex, exchange_type="topic", passive=True)
        ch.basic_publish(ex, "a.b.c", b"routed")
        ch.basic_publish(ex, "a.b.d", b"not routed")
        ok = ch.queue_declare(q, passive=True)
        c.wait_until(lambda: ch.queue_declare(q, passive=True).method.message_count == 1, "1 routed message")
        server_named = ch.queue_declare("", exclusive=True).method.queue
        c.expect(server_named.startswith("amq.gen-"), f"server-named queue {server_named!r}")
        try:
            ch.queue_declare(c.name("missing"), passive=True)
            raise AssertionError("passive declare of a missing queue succeeded")
        except pe.ChannelClosedByBroker as e:
            c.expect_eq(e.reply_code, 404, "passive declare of missing queue reply code")
        ch = conn.channel()
        try:
            ch.queue_declare(q, arguments={"x-max-length": 5})
            raise AssertionError("redeclare with different arguments succeeded")
        except pe.ChannelClosedByBroker as e:
            c.expect_eq(e.reply_code, 406, "redeclare with different arguments reply code")
        ch = conn.channel()
        ch.queue_delete(q)
        ch.exchange_delete(ex)
    finally:
        conn.close()


def case_publish_confirms():
    conn = connect()
    try:
        ch = conn.channel()
        q = c.name("confirms.q")
        ch.queue_declare(q, auto_delete=False)
        ch.confirm_delivery()
        for i in range(50):
            ch.basic_publish("", q, f"m{i}".encode(), properties=pika.BasicProperties(delivery_mode=2), mandatory=True)
        c.expect_eq(ch.queue_declare(q, passive=True).method.message_count, 50, "confirmed messages in queue")
        try:
            ch.basic_publish("", c.name("nowhere"), b"x", mandatory=True)
            raise AssertionError("unroutable mandatory publish did not raise UnroutableError")
        except pe.UnroutableError:
            pass
        ch.queue_delete(q)
    finally:
        conn.close()


def case_consume_prefetch_ack():
    conn = connect()
    try:
        ch = conn.channel()
        q = c.name("prefetch.q")
        ch.queue_declare(q)
        for i in range(10):
            ch.basic_publish("", q, f"m{i}".encode())
        ch.basic_qos(prefetch_count=3)
        got = []
        ch.basic_consume(q, lambda _ch, m, p, b: got.append((m, b)), auto_ack=False)
        c.wait_until(lambda: len(got) >= 3, "3 deliveries", pump=lambda t: conn.process_data_events(t))
        conn.process_data_events(0.5)
        c.expect_eq(len(got), 3, "deliveries in flight with prefetch 3 and no acks")
        acked = 0
        while acked < 10:
            c.wait_until(lambda: len(got) > acked, f"delivery {acked}", pump=lambda t: conn.process_data_events(t))
            m, _ = got[acked]
            ch.basic_ack(m.delivery_tag)
            acked += 1
        c.expect_eq([b for _, b in got], [f"m{i}".encode() for i in range(10)], "bodies in order")
        c.expect(all(not m.redelivered for m, _ in got), "a first delivery was flagged redelivered")
        # nack with requeue comes back redelivered
        ch.basic_publish("", q, b"again")
        c.wait_until(lambda: len(got) == 11, "11th delivery", pump=lambda t: conn.process_data_events(t))
        ch.basic_nack(got[10][0].delivery_tag, requeue=True)
        c.wait_until(lambda: len(got) == 12, "redelivery", pump=lambda t: conn.process_data_events(t))
        c.expect(got[11][0].redelivered, "requeued message not flagged redelivered")
        ch.basic_ack(got[11][0].delivery_tag)
        ch.queue_delete(q)
    finally:
        conn.close()


def case_nack_dead_letter():
    conn = connect()
    try:
        ch = conn.channel()
        dlx, dlq, q = c.name("dlx"), c.name("dlq"), c.name("work")
        ch.exchange_declare(dlx, exchange_type="fanout")
        ch.queue_declare(dlq)
        ch.queue_bind(dlq, dlx)
        ch.queue_declare(q, arguments={"x-dead-letter-exchange": dlx})
        ch.basic_publish("", q, b"doomed", properties=pika.BasicProperties(headers={"orig": "kept"}, message_id="d1"))
        method, _props, body = None, None, None
        c.wait_until(lambda: ch.queue_declare(q, passive=True).method.message_count == 1, "message in work queue")
        method, _props, body = ch.basic_get(q, auto_ack=False)
        c.expect_eq(body, b"doomed", "work queue body")
        ch.basic_nack(method.delivery_tag, requeue=False)
        got = [None]

        def poll():
            got[0] = ch.basic_get(dlq, auto_ack=True)
            return got[0][0] is not None

        c.wait_until(poll, "dead-lettered message in the DLQ")
        _m, props, body = got[0]
        c.expect_eq(body, b"doomed", "dead-lettered body")
        c.expect_eq(props.message_id, "d1", "dead-lettered message_id")
        c.expect_eq(props.headers.get("orig"), "kept", "original header after dead-lettering")
        c.check_x_death(props.headers, queue=q, exchange="", routing_key=q)
        c.expect_eq(ch.queue_declare(q, passive=True).method.message_count, 0, "work queue depth after nack")
        for x in (q, dlq):
            ch.queue_delete(x)
        ch.exchange_delete(dlx)
    finally:
        conn.close()


def case_transactions():
    conn = connect()
    try:
        ch = conn.channel()
        q = c.name("tx.q")
        ch.queue_declare(q)
        ch.tx_select()
        ch.basic_publish("", q, b"rolled back")
        ch.tx_rollback()
        ch.basic_publish("", q, b"committed")
        c.expect_eq(ch.queue_declare(q, passive=True).method.message_count, 0, "depth before commit")
        ch.tx_commit()
        c.expect_eq(ch.queue_declare(q, passive=True).method.message_count, 1, "depth after commit")
        method, _p, body = ch.basic_get(q, auto_ack=False)
        c.expect_eq(body, b"committed", "committed body")
        ch.basic_ack(method.delivery_tag)
        ch.tx_rollback()  # the ack is undone: the message stays unacked on this channel
        ch.basic_ack(method.delivery_tag)
        ch.tx_commit()
        ch.close()
        ch = conn.channel()
        c.expect_eq(ch.queue_declare(q, passive=True).method.message_count, 0, "depth after acked commit")
        ch.queue_delete(q)
    finally:
        conn.close()


def case_large_message():
    conn = connect()
    try:
        ch = conn.channel()
        q = c.name("large.q")
        ch.queue_declare(q)
        ch.confirm_delivery()
        body = c.large_body()
        ch.basic_publish("", q, body, properties=pika.BasicProperties(content_type="application/octet-stream"))
        got = []
        ch.basic_consume(q, lambda _ch, m, p, b: got.append((m, b)), auto_ack=False)
        c.wait_until(lambda: got, "16 MiB delivery", timeout=20, pump=lambda t: conn.process_data_events(t))
        m, b = got[0]
        c.expect_eq(len(b), len(body), "large body length")
        c.expect(b == body, "large body content differs")
        ch.basic_ack(m.delivery_tag)
        ch.queue_delete(q)
    finally:
        conn.close()


# Every value type pika's encoder can produce: S x t I l D T F A V (pika has no float encoder).
HEADERS = {
    "str": "héllo wörld",
    "bytes": b"\x00\x01\xfe\xff",
    "true": True,
    "false": False,
    "int32": -2147483648,
    "int64": 9007199254740993,
    "zero": 0,
    "decimal": decimal.Decimal("3.14"),
    "timestamp": c.TS,
    "table": {"nested": "yes", "n": 7, "deeper": {"x": b"y"}},
    "array": ["a", 1, True, None, {"k": "v"}, ["inner"]],
    "void": None,
    "empty-str": "",
    "empty-table": {},
    "empty-array": [],
}


def case_properties_and_headers():
    conn = connect()
    try:
        ch = conn.channel()
        q = c.name("props.q")
        ch.queue_declare(q)
        props = pika.BasicProperties(headers=HEADERS, **c.PROPS)
        ch.basic_publish("", q, b"props", properties=props)
        got = [None]

        def poll():
            got[0] = ch.basic_get(q, auto_ack=True)
            return got[0][0] is not None

        c.wait_until(poll, "message")
        _m, p, body = got[0]
        c.expect_eq(body, b"props", "body")
        for k, v in c.PROPS.items():
            c.expect_eq(getattr(p, k), v, f"property {k}")
        c.expect_headers(p.headers, HEADERS)
        c.expect_eq(list(p.headers), list(HEADERS), "header keys, in order")
        c.expect_eq(list(p.headers["table"]), list(HEADERS["table"]), "nested table keys, in order")
        ch.queue_delete(q)
    finally:
        conn.close()


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
