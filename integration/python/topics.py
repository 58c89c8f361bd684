#!/usr/bin/env python3
"""Tutorial 5, "Topics": emit_log_topic.py and receive_logs_topic.py.

A topic exchange and subscribers with the tutorial's binding patterns
("#", "kern.*", "*.critical", both of those on one queue, and the animal
examples "*.orange.*" / "*.*.rabbit" + "lazy.#"). Each subscriber must get
exactly the matching messages, in order, once each even when two of its
bindings match.
"""

import threading
import time

import _common as c

EXCHANGE = c.name("topic_logs")

MESSAGES = [
    "kern.critical",
    "anonymous.info",
    "kern.info",
    "cron.critical",
    "a.b.critical",
    "kern",
    "",
    "quick.orange.rabbit",
    "lazy.orange.elephant",
    "quick.orange.fox",
    "lazy.brown.fox",
    "lazy.pink.rabbit",
    "quick.brown.fox",
    "orange",
    "quick.orange.male.rabbit",
    "lazy.orange.male.rabbit",
    "lazy",
]

SUBSCRIBERS = {
    "all": (["#"], MESSAGES),
    "kern": (["kern.*"], ["kern.critical", "kern.info"]),
    "critical": (["*.critical"], ["kern.critical", "cron.critical"]),
    "kern+critical": (
        ["kern.*", "*.critical"],
        ["kern.critical", "kern.info", "cron.critical"],
    ),
    "Q1": (["*.orange.*"], ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox"]),
    "Q2": (
        ["*.*.rabbit", "lazy.#"],
        [
            "quick.orange.rabbit",
            "lazy.orange.elephant",
            "lazy.brown.fox",
            "lazy.pink.rabbit",
            "lazy.orange.male.rabbit",
            "lazy",
        ],
    ),
}


def emit_log_topic(routing_keys):
    connection = c.connect()
    channel = connection.channel()
    channel.exchange_declare(exchange=EXCHANGE, exchange_type="topic")
    for routing_key in routing_keys:
        message = f"message for {routing_key!r}".encode()
        channel.basic_publish(exchange=EXCHANGE, routing_key=routing_key, body=message)
        print(f" [x] Sent {routing_key!r}", flush=True)
    connection.close()


def receive_logs_topic(label, binding_keys, expected_last, ready, received):
    connection = c.connect()
    channel = connection.channel()
    channel.exchange_declare(exchange=EXCHANGE, exchange_type="topic")
    result = channel.queue_declare("", exclusive=True)
    queue_name = result.method.queue
    for binding_key in binding_keys:
        channel.queue_bind(exchange=EXCHANGE, queue=queue_name, routing_key=binding_key)

    def callback(ch, method, properties, body):
        c.expect(body == f"message for {method.routing_key!r}".encode(), f"body {body!r}")
        received.append(method.routing_key)

    channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)
    ready.set()
    c.consume_until(connection, channel, lambda: received and received[-1] == expected_last)
    # Catch a stray duplicate or late extra delivery.
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        connection.process_data_events(time_limit=0.05)
    connection.close()


def body():
    received = {label: [] for label in SUBSCRIBERS}
    threads = []
    for label, (binding_keys, expected) in SUBSCRIBERS.items():
        ready = threading.Event()
        t = c.Worker(
            receive_logs_topic, label, binding_keys, expected[-1], ready, received[label], name=label
        )
        t.start()
        c.expect(ready.wait(10), f"subscriber {label} never became ready")
        threads.append(t)

    emit_log_topic(MESSAGES)
    for t in threads:
        t.join_checked()

    for label, (binding_keys, expected) in SUBSCRIBERS.items():
        print(f" [{label}] {binding_keys} -> {received[label]}", flush=True)
        c.expect(received[label] == expected, f"{label}: got {received[label]!r}, want {expected!r}")

    connection = c.connect()
    connection.channel().exchange_delete(exchange=EXCHANGE)
    connection.close()


if __name__ == "__main__":
    c.main("topics", body)
