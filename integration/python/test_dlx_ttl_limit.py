#!/usr/bin/env python3
"""Dead-lettering, TTL and the delivery limit through pika.

  1. a rejected message is dead-lettered through a DLX with RabbitMQ's x-death
     layout (count, reason, queue, time, exchange, routing-keys) and the
     x-first-death-* headers (x-last-death-* too, except on RabbitMQ < 3.13);
  2. a message past its per-message TTL is never delivered from its queue and
     is dead-lettered with reason "expired" and original-expiration, without
     its expiration property; a queue TTL expires messages the same way;
  3. x-delivery-limit: redeliveries carry x-delivery-count (1 on the first
     redelivery); the return after the last allowed delivery dead-letters the
     message with reason "delivery_limit". RabbitMQ has the limit only on
     quorum queues, so against RabbitMQ the poison queue is a quorum queue.
"""

import datetime
import time

import pika

import _common as c

DLX = c.name("dlx.exchange")
DEAD = c.name("dlx.dead")
WORK = c.name("dlx.work")
EXPIRING = c.name("dlx.expiring")
QUEUE_TTL = c.name("dlx.queue_ttl")
POISON = c.name("dlx.poison")
POISON_DEAD = c.name("dlx.poison_dead")


def server_is_rabbitmq(connection):
    props = connection._impl.server_properties or {}
    product = props.get("product", b"")
    if isinstance(product, bytes):
        product = product.decode()
    return product == "RabbitMQ"


def get_within(channel, queue, seconds=3.0, auto_ack=True):
    """basic.get until a message arrives; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=auto_ack)
        if method is not None:
            return method, props, body
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing reached {queue} within {seconds}s")
        time.sleep(0.02)


def check_death(entry, count, reason, queue, exchange, keys, original_expiration=None):
    c.expect(entry.get("count") == count, f"count {count}: {entry!r}")
    c.expect(entry.get("reason") == reason, f"reason {reason}: {entry!r}")
    c.expect(entry.get("queue") == queue, f"queue {queue}: {entry!r}")
    c.expect(entry.get("exchange") == exchange, f"exchange {exchange!r}: {entry!r}")
    c.expect(entry.get("routing-keys") == keys, f"routing-keys {keys}: {entry!r}")
    when = entry.get("time")
    c.expect(isinstance(when, datetime.datetime), f"time is a timestamp: {entry!r}")
    now = datetime.datetime.now(datetime.timezone.utc)
    c.expect(abs((now - when).total_seconds()) < 120, f"time {when} is now-ish")
    if original_expiration is None:
        c.expect("original-expiration" not in entry, f"no original-expiration: {entry!r}")
    else:
        c.expect(
            entry.get("original-expiration") == original_expiration,
            f"original-expiration {original_expiration}: {entry!r}",
        )


def check_first_last(headers, reason, queue, exchange, rabbitmq, last=None):
    for key, want in (("reason", reason), ("queue", queue), ("exchange", exchange)):
        got = headers.get(f"x-first-death-{key}")
        c.expect(got == want, f"x-first-death-{key} {want!r}, got {got!r}")
    if rabbitmq:
        return  # RabbitMQ 3.10 predates x-last-death-*.
    last = last or (reason, queue, exchange)
    for key, want in zip(("reason", "queue", "exchange"), last):
        got = headers.get(f"x-last-death-{key}")
        c.expect(got == want, f"x-last-death-{key} {want!r}, got {got!r}")


def rejected(channel, rabbitmq):
    channel.exchange_declare(DLX, "direct", auto_delete=True)
    channel.queue_declare(DEAD, exclusive=True)
    channel.queue_bind(DEAD, DLX, routing_key=WORK)
    channel.queue_declare(WORK, exclusive=True, arguments={"x-dead-letter-exchange": DLX})
    channel.basic_publish(
        "",
        WORK,
        b"bad order",
        pika.BasicProperties(message_id="order-7", headers={"app": "kept"}),
    )
    method, _, _ = get_within(channel, WORK, auto_ack=False)
    channel.basic_reject(method.delivery_tag, requeue=False)

    method, props, body = get_within(channel, DEAD)
    c.expect(body == b"bad order", f"body {body!r}")
    c.expect(method.exchange == DLX, f"published to the DLX, got {method.exchange!r}")
    c.expect(method.routing_key == WORK, f"original routing key, got {method.routing_key!r}")
    c.expect(props.message_id == "order-7", f"properties kept: {props!r}")
    headers = props.headers or {}
    c.expect(headers.get("app") == "kept", f"headers kept: {headers!r}")
    deaths = headers.get("x-death")
    c.expect(isinstance(deaths, list) and len(deaths) == 1, f"x-death: {deaths!r}")
    check_death(deaths[0], 1, "rejected", WORK, "", [WORK])
    check_first_last(headers, "rejected", WORK, "", rabbitmq)
    print(" [x] rejected -> dead-lettered with x-death", flush=True)


def expired(channel, rabbitmq):
    channel.queue_declare(
        EXPIRING,
        exclusive=True,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": DEAD},
    )
    channel.basic_publish("", EXPIRING, b"stale", pika.BasicProperties(expiration="150"))
    time.sleep(0.5)
    method, _, _ = channel.basic_get(EXPIRING, auto_ack=True)
    c.expect(method is None, "an expired message was delivered")

    _, props, body = get_within(channel, DEAD)
    c.expect(body == b"stale", f"body {body!r}")
    c.expect(props.expiration is None, f"expiration removed: {props!r}")
    headers = props.headers or {}
    check_death(headers["x-death"][0], 1, "expired", EXPIRING, "", [EXPIRING], "150")
    check_first_last(headers, "expired", EXPIRING, "", rabbitmq)

    channel.queue_declare(QUEUE_TTL, exclusive=True, arguments={"x-message-ttl": 100})
    channel.basic_publish("", QUEUE_TTL, b"short-lived")
    time.sleep(0.4)
    method, _, _ = channel.basic_get(QUEUE_TTL, auto_ack=True)
    c.expect(method is None, "a message past the queue TTL was delivered")
    print(" [x] expired -> never delivered, dead-lettered", flush=True)


def delivery_limit(channel, rabbitmq):
    channel.queue_declare(POISON_DEAD, exclusive=True)
    args = {
        "x-delivery-limit": 2,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": POISON_DEAD,
    }
    if rabbitmq:
        args["x-queue-type"] = "quorum"
        channel.queue_declare(POISON, durable=True, arguments=args)
    else:
        channel.queue_declare(POISON, exclusive=True, arguments=args)
    try:
        channel.basic_publish("", POISON, b"poison")
        counts = []
        for _ in range(3):
            method, props, _ = get_within(channel, POISON, auto_ack=False)
            counts.append((method.redelivered, (props.headers or {}).get("x-delivery-count")))
            channel.basic_nack(method.delivery_tag, requeue=True)
        # RabbitMQ 3.10 quorum queues send 0 on the first delivery, newer brokers omit it.
        c.expect(counts[0] in ((False, None), (False, 0)), f"first delivery: {counts!r}")
        c.expect(counts[1:] == [(True, 1), (True, 2)], f"redeliveries: {counts!r}")

        _, props, body = get_within(channel, POISON_DEAD)
        c.expect(body == b"poison", f"body {body!r}")
        headers = props.headers or {}
        check_death(headers["x-death"][0], 1, "delivery_limit", POISON, "", [POISON])
        check_first_last(headers, "delivery_limit", POISON, "", rabbitmq)
        method, _, _ = channel.basic_get(POISON, auto_ack=True)
        c.expect(method is None, "the poison message is gone from its queue")
    finally:
        channel.queue_delete(POISON)
    print(" [x] delivery limit -> x-delivery-count, dead-lettered", flush=True)


def body():
    connection = c.connect()
    rabbitmq = server_is_rabbitmq(connection)
    channel = connection.channel()
    rejected(channel, rabbitmq)
    expired(channel, rabbitmq)
    delivery_limit(channel, rabbitmq)
    connection.close()


if __name__ == "__main__":
    c.main("test_dlx_ttl_limit.py", body)
