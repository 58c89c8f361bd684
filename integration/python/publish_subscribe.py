#!/usr/bin/env python3
"""Tutorial 3, "Publish/Subscribe": emit_log.py and receive_logs.py.

A fanout exchange and two subscribers, each with an exclusive server-named
queue. Checks: a message sent before anyone is bound is dropped; every
subscriber gets every later message, in order; server-named queues look like
amq.gen-*; another connection cannot use an exclusive queue (405); the queue
is gone once its connection closes (404).
"""

import threading
import time

import pika

import _common as c

EXCHANGE = c.name("logs")
LAST = b"info: last"


def emit_log(messages):
    connection = c.connect()
    channel = connection.channel()
    channel.exchange_declare(exchange=EXCHANGE, exchange_type="fanout")
    for message in messages:
        channel.basic_publish(exchange=EXCHANGE, routing_key="", body=message)
        print(f" [x] Sent {message!r}", flush=True)
    connection.close()


def receive_logs(label, ready, received, queue_names, release):
    connection = c.connect()
    channel = connection.channel()
    channel.exchange_declare(exchange=EXCHANGE, exchange_type="fanout")
    result = channel.queue_declare(queue="", exclusive=True)
    queue_name = result.method.queue
    queue_names[label] = queue_name
    channel.queue_bind(exchange=EXCHANGE, queue=queue_name)

    def callback(ch, method, properties, body):
        print(f" [{label}] {body!r}", flush=True)
        received.append(body)

    channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)
    ready.set()
    c.consume_until(connection, channel, lambda: received and received[-1] == LAST)
    # Stay connected until the main thread has checked exclusivity.
    c.expect(release.wait(10), "never released")
    connection.close()


def body():
    emit_log([b"info: nobody is listening"])

    messages = [b"info: one", b"warning: two", b"error: three", LAST]
    received = {"A": [], "B": []}
    queue_names = {}
    release = threading.Event()
    subscribers = []
    for label in received:
        ready = threading.Event()
        s = c.Worker(
            receive_logs, label, ready, received[label], queue_names, release, name=label
        )
        s.start()
        c.expect(ready.wait(10), f"subscriber {label} never became ready")
        subscribers.append(s)

    emit_log(messages)

    # Wait until both subscribers saw the last message, then probe exclusivity.
    for _ in range(int(c.TIMEOUT * 10)):
        if all(r and r[-1] == LAST for r in received.values()):
            break
        time.sleep(0.1)
    for label, r in received.items():
        c.expect(r == messages, f"subscriber {label} received {r!r}")
    for label, q in queue_names.items():
        c.expect(q.startswith("amq.gen-"), f"server-named queue {q!r}")
    c.expect(queue_names["A"] != queue_names["B"], "queue names must differ")

    other = c.connect()
    try:
        channel = other.channel()
        try:
            channel.queue_declare(queue=queue_names["A"], passive=True)
            raise AssertionError("passive declare of another connection's exclusive queue succeeded")
        except pika.exceptions.ChannelClosedByBroker as e:
            c.expect(e.reply_code == 405, f"expected 405 RESOURCE_LOCKED, got {e!r}")

        release.set()
        for s in subscribers:
            s.join_checked()

        # The queue may take a moment to go after the close handshake.
        for attempt in range(20):
            channel = other.channel()
            try:
                channel.queue_declare(queue=queue_names["A"], passive=True)
            except pika.exceptions.ChannelClosedByBroker as e:
                c.expect(e.reply_code == 404, f"expected 404 NOT_FOUND, got {e!r}")
                break
            channel.close()
            other.sleep(0.1)
        else:
            raise AssertionError("exclusive queue survived its connection")
        channel = other.channel()
        channel.exchange_delete(exchange=EXCHANGE)
    finally:
        other.close()


if __name__ == "__main__":
    c.main("publish_subscribe", body)
