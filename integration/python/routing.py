#!/usr/bin/env python3
"""Tutorial 4, "Routing": emit_log_direct.py and receive_logs_direct.py.

A direct exchange; one subscriber binds "error" only, the other binds
"info", "warning" and "error" (several bindings on one queue). Each gets
exactly the severities it bound, once each and in order; unbound severities
are dropped.
"""

import threading

import _common as c

EXCHANGE = c.name("direct_logs")
LAST = ("error", b"last error")


def emit_log_direct(messages):
    connection = c.connect()
    channel = connection.channel()
    channel.exchange_declare(exchange=EXCHANGE, exchange_type="direct")
    for severity, message in messages:
        channel.basic_publish(exchange=EXCHANGE, routing_key=severity, body=message)
        print(f" [x] Sent {severity}:{message!r}", flush=True)
    connection.close()


def receive_logs_direct(label, severities, ready, received):
    connection = c.connect()
    channel = connection.channel()
    channel.exchange_declare(exchange=EXCHANGE, exchange_type="direct")
    result = channel.queue_declare(queue="", exclusive=True)
    queue_name = result.method.queue
    for severity in severities:
        channel.queue_bind(exchange=EXCHANGE, queue=queue_name, routing_key=severity)

    def callback(ch, method, properties, body):
        print(f" [{label}] {method.routing_key}:{body!r}", flush=True)
        received.append((method.routing_key, body))

    channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)
    ready.set()
    c.consume_until(connection, channel, lambda: received and received[-1] == LAST)
    connection.close()


def body():
    messages = [
        ("info", b"starting"),
        ("debug", b"nobody wants this"),
        ("warning", b"disk at 80%"),
        ("error", b"disk full"),
        ("critical", b"not bound either"),
        ("info", b"recovered"),
        LAST,
    ]
    subscribers = {"errors": ["error"], "all": ["info", "warning", "error"]}
    received = {label: [] for label in subscribers}
    threads = []
    for label, severities in subscribers.items():
        ready = threading.Event()
        t = c.Worker(receive_logs_direct, label, severities, ready, received[label], name=label)
        t.start()
        c.expect(ready.wait(10), f"subscriber {label} never became ready")
        threads.append(t)

    emit_log_direct(messages)
    for t in threads:
        t.join_checked()

    for label, severities in subscribers.items():
        expected = [m for m in messages if m[0] in severities]
        c.expect(received[label] == expected, f"{label}: got {received[label]!r}, want {expected!r}")

    connection = c.connect()
    connection.channel().exchange_delete(exchange=EXCHANGE)
    connection.close()


if __name__ == "__main__":
    c.main("routing", body)
